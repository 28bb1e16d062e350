#![no_main]
//! Any bytes as a sequence of client commands to the sans-IO hub (connect, join, leave,
//! broadcast, direct message, drain, disconnect, activity, timers, shutdown), three bytes
//! each, on a fake clock. Never a panic, and never more rooms per client than the cap.

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use ws_core::{Hub, HubConfig, Message};

const ROOMS: [&str; 6] = ["lobby", "a", "b", "c", "d", "e"];

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let config = HubConfig {
        queue_messages: 8,
        queue_bytes: 512,
        max_rooms_per_client: 4,
        ..HubConfig::default()
    };
    let mut hub = Hub::new(config);
    let mut ids = Vec::new();
    for (step, command) in data.chunks_exact(3).enumerate() {
        let now = start + Duration::from_millis(step as u64 * 700);
        let (op, a, b) = (command[0], usize::from(command[1]), command[2]);
        let id = (!ids.is_empty()).then(|| ids[a % ids.len()]);
        let room = ROOMS[usize::from(b) % ROOMS.len()];
        match (op % 10, id) {
            (0, _) => ids.extend(hub.connect(format!("c{a}"), now).ok()),
            (1, Some(id)) => drop(hub.join(id, room, now)),
            (2, Some(id)) => drop(hub.leave(id, room, now)),
            (3, Some(id)) => {
                drop(hub.broadcast(id, room, Message::text("x".repeat(usize::from(b))), now))
            }
            (4, Some(id)) => drop(hub.send_to(
                id,
                ids[usize::from(b) % ids.len()],
                Message::binary(vec![b; a]),
                now,
            )),
            (5, Some(id)) => while hub.poll_transmit(id).is_some() {},
            (6, Some(id)) => hub.disconnect(id, now),
            (7, Some(id)) => hub.handle_activity(id, now),
            (8, _) => hub.handle_timeout(now),
            (9, _) if b == 0 => hub.shutdown(now),
            (9, _) => drop(hub.deliver_remote(room, Message::text("remote"))),
            _ => {}
        }
        while hub.poll_ready().is_some() {}
        while hub.poll_publish().is_some() {}
        let _ = hub.poll_timeout();
        for id in &ids {
            assert!(hub.rooms_of(*id) <= 4);
        }
    }
});
