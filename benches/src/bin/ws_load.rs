//! The WebSocket load generator of scripts/bench-ws.sh.
//!
//! `ws_load ADDR CONNECTIONS SIZE PIPELINE SECONDS [deflate] [--pid PID] [--bursts N]`
//!
//! Opens CONNECTIONS connections, then on each keeps PIPELINE masked text messages of SIZE
//! bytes in flight (write them, read their echoes, repeat) for SECONDS, on one thread. With
//! `deflate` it offers permessage-deflate with no context takeover on either side, sends each
//! message compressed (RSV1), and refuses a server that does not accept the offer. With
//! `--pid` it reads the server's CPU time from /proc around the measured interval (after
//! every connection is open). With `--bursts N` each connection sends N bursts and stops
//! instead (SECONDS is then ignored and every echo counts): a fixed amount of work, for
//! counting a server's instructions under callgrind (run twice with different N and take the
//! difference, which cancels start-up and handshakes). Prints one line of `key=value` fields.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use backend_kit_benches::proc::cpu_ticks;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A payload that compresses like chat traffic does (JSON with varying words), not like zeros.
fn payload(size: usize) -> Vec<u8> {
    let words = [
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
    ];
    let mut out = Vec::with_capacity(size + 64);
    let mut i = 0usize;
    while out.len() < size {
        write!(
            out,
            "{{\"id\":{i},\"user\":\"{}\",\"text\":\"{} {} {}\"}}",
            words[i % 8],
            words[(i * 3) % 8],
            words[(i * 5 + 1) % 8],
            i * 7919 % 1000
        )
        .unwrap();
        i += 1;
    }
    out.truncate(size);
    out
}

/// One masked client frame; `compressed` sets RSV1.
fn frame(body: &[u8], compressed: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 14);
    out.push(if compressed { 0xC1 } else { 0x81 });
    match body.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&MASK);
    out.extend(body.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    out
}

/// Raw deflate with a sync flush, the trailing 00 00 ff ff removed (RFC 7692 section 7.2.1).
fn deflate(body: &[u8]) -> Vec<u8> {
    let mut compressor = flate2::Compress::new(flate2::Compression::new(6), false);
    let mut out = Vec::with_capacity(body.len() + 64);
    compressor
        .compress_vec(body, &mut out, flate2::FlushCompress::Sync)
        .unwrap();
    while out.len() == out.capacity() {
        out.reserve(1024);
        compressor
            .compress_vec(&[], &mut out, flate2::FlushCompress::Sync)
            .unwrap();
    }
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

/// Bytes of one complete server frame at the start of `buf`, if it is all there.
fn frame_len(buf: &[u8]) -> Option<usize> {
    let b1 = *buf.get(1)?;
    let (len, head) = match b1 & 0x7f {
        126 => (u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]) as usize, 4),
        127 => {
            let bytes: [u8; 8] = buf.get(2..10)?.try_into().ok()?;
            (u64::from_be_bytes(bytes) as usize, 10)
        }
        n => (n as usize, 2),
    };
    let total = head + len;
    (buf.len() >= total).then_some(total)
}

async fn connect(addr: SocketAddr, deflate: bool) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).unwrap();
    let extension = if deflate {
        "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_no_context_takeover\r\n"
    } else {
        ""
    };
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extension}\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.expect("handshake");
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(
        text.starts_with("http/1.1 101"),
        "handshake refused: {text}"
    );
    if deflate {
        assert!(
            text.contains("permessage-deflate"),
            "the server did not accept permessage-deflate"
        );
    }
    stream
}

/// Keeps `pipeline` messages in flight until `stop`; counts echoes into `done` while `counting`.
async fn drive(
    mut stream: TcpStream,
    batch: Arc<Vec<u8>>,
    pipeline: usize,
    counting: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    bursts: Option<u64>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 17);
    let mut chunk = vec![0u8; 1 << 16];
    let mut sent = 0u64;
    while !stop.load(Ordering::Relaxed) && bursts.is_none_or(|n| sent < n) {
        sent += 1;
        stream.write_all(&batch).await.expect("write");
        let mut want = pipeline;
        while want > 0 {
            let mut echoes = 0;
            while let Some(n) = frame_len(&buf) {
                buf.drain(..n);
                want -= 1;
                echoes += 1;
                if want == 0 {
                    break;
                }
            }
            // Each echo counts when it arrives (not when its burst is complete), so a server
            // that finishes few bursts in the window is still measured by what it did.
            if echoes > 0 && counting.load(Ordering::Relaxed) {
                done.fetch_add(echoes, Ordering::Relaxed);
            }
            if want == 0 {
                break;
            }
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "the server closed the connection");
            buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Read and write system calls of a process so far (`syscr`, `syscw` in /proc/PID/io).
fn syscalls(pid: &str) -> Option<(u64, u64)> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    let field = |name: &str| {
        io.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|value| value.trim().parse::<u64>().ok())
    };
    Some((field("syscr:")?, field("syscw:")?))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 6 {
        eprintln!("usage: ws_load ADDR CONNECTIONS SIZE PIPELINE SECONDS [deflate] [--pid PID]");
        std::process::exit(2);
    }
    let addr: SocketAddr = args[1].parse().expect("address");
    let connections: usize = args[2].parse().expect("connections");
    let size: usize = args[3].parse().expect("size");
    let pipeline: usize = args[4].parse().expect("pipeline");
    let seconds: f64 = args[5].parse().expect("seconds");
    let compress = args.iter().any(|a| a == "deflate");
    let pid = args
        .iter()
        .position(|a| a == "--pid")
        .and_then(|i| args.get(i + 1).cloned());
    let bursts: Option<u64> = args
        .iter()
        .position(|a| a == "--bursts")
        .and_then(|i| args.get(i + 1))
        .map(|n| n.parse().expect("bursts"));

    let body = payload(size);
    let one = if compress {
        frame(&deflate(&body), true)
    } else {
        frame(&body, false)
    };
    let batch = Arc::new(one.repeat(pipeline));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let (elapsed, server_ticks, own_ticks, server_syscalls) = runtime.block_on(async {
        let mut streams = Vec::with_capacity(connections);
        for _ in 0..connections {
            streams.push(connect(addr, compress).await);
        }
        let tasks: Vec<_> = streams
            .into_iter()
            .map(|stream| {
                tokio::spawn(drive(
                    stream,
                    batch.clone(),
                    pipeline,
                    counting.clone(),
                    stop.clone(),
                    done.clone(),
                    bursts,
                ))
            })
            .collect();
        if bursts.is_some() {
            // A fixed amount of work: every echo counts, the time is what it took.
            counting.store(true, Ordering::Relaxed);
            let started = Instant::now();
            for task in tasks {
                let _ = task.await;
            }
            return (started.elapsed(), None, None, None);
        }
        // A short warm-up, then the measured interval.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let server_before = pid.as_deref().and_then(cpu_ticks);
        let syscalls_before = pid.as_deref().and_then(syscalls);
        let own_before = cpu_ticks("self");
        counting.store(true, Ordering::Relaxed);
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        counting.store(false, Ordering::Relaxed);
        let elapsed = started.elapsed();
        let server_after = pid.as_deref().and_then(cpu_ticks);
        let syscalls_after = pid.as_deref().and_then(syscalls);
        let own_after = cpu_ticks("self");
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            let _ = task.await;
        }
        let diff = |a: Option<u64>, b: Option<u64>| Some(b?.saturating_sub(a?));
        let calls = match (syscalls_before, syscalls_after) {
            (Some((r0, w0)), Some((r1, w1))) => {
                Some((r1.saturating_sub(r0), w1.saturating_sub(w0)))
            }
            _ => None,
        };
        (
            elapsed,
            diff(server_before, server_after),
            diff(own_before, own_after),
            calls,
        )
    });
    let messages = done.load(Ordering::Relaxed);
    // /proc reports clock ticks of 10 ms (USER_HZ 100 on Linux).
    let per_message = |ticks: Option<u64>| match ticks {
        Some(t) if messages > 0 => format!("{:.3}", t as f64 * 10_000.0 / messages as f64),
        _ => "n/a".to_owned(),
    };
    let (reads, writes) = match server_syscalls {
        Some((r, w)) if messages > 0 => (
            format!("{:.3}", r as f64 / messages as f64),
            format!("{:.3}", w as f64 / messages as f64),
        ),
        _ => ("n/a".to_owned(), "n/a".to_owned()),
    };
    println!(
        "messages={messages} seconds={:.2} rate={:.0} server_cpu_us_per_msg={} load_cpu_us_per_msg={} \
         server_reads_per_msg={reads} server_writes_per_msg={writes}",
        elapsed.as_secs_f64(),
        messages as f64 / elapsed.as_secs_f64(),
        per_message(server_ticks),
        per_message(own_ticks),
    );
}
