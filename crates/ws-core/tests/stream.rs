//! The tokio adapter over an in-memory stream: pipelined messages of every size, written in
//! uneven pieces so that large frames arrive in parts while the echoes of the frames before
//! them still wait to be written (they share the read buffer).
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ws_core::{Connection, Limits, WebSocket};

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A masked client text frame.
fn client_frame(payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x81];
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len < 65536 {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&MASK);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    out
}

/// The unmasked server frame the echo of `payload` must be.
fn server_frame(payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x81];
    let len = payload.len();
    if len < 126 {
        out.push(len as u8);
    } else if len < 65536 {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_echoes_of_every_size_arrive_whole_and_in_order() {
    let sizes = [
        16usize,
        1024,
        20_000,
        65_536,
        16,
        70_000,
        1024,
        16 * 1024,
        300_000,
        5,
    ];
    let payloads: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(n, &size)| (0..size).map(|i| b'a' + ((i + n) % 26) as u8).collect())
        .collect();
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    for _ in 0..3 {
        for payload in &payloads {
            wire.extend(client_frame(payload));
            expected.extend(server_frame(payload));
        }
    }
    // A small pipe, so the server's writes block while its reads go on in parts.
    let (client, server) = tokio::io::duplex(8 * 1024);
    let echo = tokio::spawn(async move {
        // Room to queue every echo: the test checks bytes, not backpressure.
        let limits = Limits {
            max_send_buffer: 8 << 20,
            ..Limits::default()
        };
        let mut ws = WebSocket::new(server, Connection::new(limits, None));
        let mut count = 0;
        while let Some(message) = ws.next_message().await {
            let message = message.expect("valid frames");
            if message.is_text() {
                count += 1;
                ws.queue(message).expect("room to queue");
            }
        }
        count
    });
    let (mut read, mut write) = tokio::io::split(client);
    let writer = tokio::spawn(async move {
        // Uneven pieces that cut frames and headers anywhere.
        let mut rest = &wire[..];
        let mut step = 1;
        while !rest.is_empty() {
            let n = step.min(rest.len());
            write.write_all(&rest[..n]).await.unwrap();
            rest = &rest[n..];
            step = (step * 7 + 3) % 50_000 + 1;
        }
        write
    });
    let mut got = vec![0u8; expected.len()];
    read.read_exact(&mut got).await.unwrap();
    assert!(got == expected, "echoes differ from what was sent");
    let mut write = writer.await.unwrap();
    // A close frame ends the connection: the server answers and shuts down.
    write
        .write_all(&[0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xe8 ^ 2])
        .await
        .unwrap();
    let mut close = Vec::new();
    read.read_to_end(&mut close).await.unwrap();
    assert_eq!(close, [0x88, 0x02, 0x03, 0xe8]);
    assert_eq!(echo.await.unwrap(), 3 * sizes.len());
}
