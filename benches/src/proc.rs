//! CPU time of processes from `/proc` (Linux), for the benches that report what each side
//! (the bench process, a broker, a server) spends per message or request.

/// User + system CPU time of process `pid` (a number, or `self`), in clock ticks (10 ms on
/// this machine); `None` when it cannot be read.
#[must_use]
pub fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split(' ').collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The pid of the first process named `name` (its `comm`), e.g. the machine's
/// `nats-server`.
#[must_use]
pub fn pid_of(name: &str) -> Option<String> {
    std::fs::read_dir("/proc").ok()?.find_map(|entry| {
        let entry = entry.ok()?;
        let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
        (comm.trim() == name).then(|| entry.file_name().to_string_lossy().into_owned())
    })
}
