#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! HTTP-level tests of the rest-api example: every status the issue names, paging, CORS,
//! idempotency and the bad inputs of docs/security.md, against the running binary.

pub(crate) mod support;

use support::Server;

const ADA: &str = r#"{"name":"Ada","email":"ada@example.com"}"#;

fn create_user(server: &Server, body: &str) -> (i64, String) {
    let reply = server.json("POST", "/users", &[], body);
    assert_eq!(reply.status, 201, "{reply:?}");
    let id = reply.json()["id"].as_i64().unwrap();
    assert_eq!(
        reply.header("location"),
        Some(format!("/users/{id}").as_str())
    );
    (id, reply.header("etag").unwrap().to_owned())
}

#[test]
fn unknown_path_is_404_problem() {
    let Some(server) = Server::start() else {
        return;
    };
    server.get("/nothing/here", &[]).problem(404);
    server.get("/users/999", &[]).problem(404);
    // Strict trailing slash: an empty id is another path.
    server.get("/users/", &[]).problem(404);
}

#[test]
fn wrong_method_is_405_with_allow_and_options_lists_it() {
    let Some(server) = Server::start() else {
        return;
    };
    let reply = server.send("PATCH", b"/users/1", &[], b"");
    reply.problem(405);
    assert_eq!(
        reply.header("allow"),
        Some("GET, HEAD, PUT, DELETE, OPTIONS")
    );
    let reply = server.send("OPTIONS", b"/users", &[], b"");
    assert_eq!(reply.status, 204);
    assert_eq!(reply.header("allow"), Some("GET, HEAD, POST, OPTIONS"));
}

#[test]
fn unacceptable_accept_is_406() {
    let Some(server) = Server::start() else {
        return;
    };
    let problem = server
        .get("/users", &[("Accept", "text/html")])
        .problem(406);
    assert_eq!(problem["available"][0], "application/json");
    assert_eq!(
        server
            .get("/users", &[("Accept", "application/*;q=0.5")])
            .status,
        200
    );
}

#[test]
fn wrong_content_type_is_415() {
    let Some(server) = Server::start() else {
        return;
    };
    let reply = server.send(
        "POST",
        b"/users",
        &[("Content-Type", "text/plain")],
        ADA.as_bytes(),
    );
    reply.problem(415);
    server
        .send("POST", b"/users", &[], ADA.as_bytes())
        .problem(415);
}

#[test]
fn the_415_message_names_the_content_type_in_words() {
    let Some(server) = Server::start() else {
        return;
    };
    let problem = server
        .send(
            "POST",
            b"/users",
            &[("Content-Type", "text/plain")],
            ADA.as_bytes(),
        )
        .problem(415);
    assert_eq!(
        problem["detail"],
        r#"unsupported content type "text/plain"; expected application/json"#
    );
    let problem = server
        .send("POST", b"/users", &[], ADA.as_bytes())
        .problem(415);
    assert_eq!(
        problem["detail"],
        "the request has no Content-Type; expected application/json"
    );
}

#[test]
fn a_json_array_or_scalar_is_not_a_user_or_a_post() {
    let Some(server) = Server::start() else {
        return;
    };
    for body in [r#"["Ada","ada@example.com"]"#, r#""Ada""#, "42", "null"] {
        let problem = server.json("POST", "/users", &[], body).problem(422);
        assert_eq!(problem["pointer"], "", "{body}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains("expected a JSON object"), "{detail}");
    }
    let (id, etag) = create_user(&server, ADA);
    let path = format!("/users/{id}");
    server
        .json("PUT", &path, &[("If-Match", &etag)], r#"["Ada","x@y"]"#)
        .problem(422);
    server
        .json("POST", &format!("{path}/posts"), &[], r#"["t","b"]"#)
        .problem(422);
    // Nothing was created by the refused bodies.
    let users = server.get("/users", &[]).json();
    assert_eq!(users["items"].as_array().unwrap().len(), 1);
}

#[test]
fn a_taken_email_is_409_on_create_and_replace() {
    let Some(server) = Server::start() else {
        return;
    };
    let (ada, _) = create_user(&server, ADA);
    let problem = server
        .json(
            "POST",
            "/users",
            &[],
            r#"{"name":"Other Ada","email":"ADA@example.com"}"#,
        )
        .problem(409);
    assert_eq!(problem["pointer"], "/email");
    assert_eq!(
        problem["detail"],
        "another user already has the e-mail ADA@example.com"
    );
    let (bob, bob_etag) = create_user(&server, r#"{"name":"Bob","email":"bob@example.com"}"#);
    server
        .json(
            "PUT",
            &format!("/users/{bob}"),
            &[("If-Match", &bob_etag)],
            r#"{"name":"Bob","email":"ada@example.com"}"#,
        )
        .problem(409);
    // Bob is unchanged, and may keep his own address on a replace.
    let reply = server.get(&format!("/users/{bob}"), &[]);
    assert_eq!(reply.json()["email"], "bob@example.com");
    let etag = reply.header("etag").unwrap().to_owned();
    let kept = server.json(
        "PUT",
        &format!("/users/{bob}"),
        &[("If-Match", &etag)],
        r#"{"name":"Robert","email":"bob@example.com"}"#,
    );
    assert_eq!(kept.status, 200, "{kept:?}");
    // Once Ada is deleted, her address is free again.
    let ada_etag = server.get(&format!("/users/{ada}"), &[]);
    let etag = ada_etag.header("etag").unwrap().to_owned();
    let deleted = server.send(
        "DELETE",
        format!("/users/{ada}").as_bytes(),
        &[("If-Match", &etag)],
        b"",
    );
    assert_eq!(deleted.status, 204);
    create_user(&server, ADA);
}

#[test]
fn broken_json_is_400_with_line_and_column_and_bad_data_is_422_with_pointer() {
    let Some(server) = Server::start() else {
        return;
    };
    let problem = server
        .json("POST", "/users", &[], "{\n  \"name\": \"a\",,\n}")
        .problem(400);
    assert_eq!(
        (problem["line"].as_u64(), problem["column"].as_u64()),
        (Some(2), Some(15))
    );
    let problem = server
        .json("POST", "/users", &[], r#"{"name":"Ada","email":7}"#)
        .problem(422);
    assert_eq!(problem["pointer"], "/email");
    let problem = server
        .json("POST", "/users", &[], r#"{"email":"a@b"}"#)
        .problem(422);
    assert_eq!(problem["pointer"], "/name");
    let problem = server
        .json("POST", "/users", &[], r#"{"name":"","email":"a@b"}"#)
        .problem(422);
    assert_eq!(problem["pointer"], "/name");
    let problem = server
        .json("POST", "/users", &[], r#"{"name":"x","email":"nope"}"#)
        .problem(422);
    assert_eq!(problem["pointer"], "/email");
    let problem = server
        .json(
            "POST",
            "/users",
            &[],
            r#"{"name":"x","email":"a@b","admin":true}"#,
        )
        .problem(422);
    assert_eq!(problem["pointer"], "/admin");
}

#[test]
fn schema_boundary_values_are_accepted() {
    let Some(server) = Server::start() else {
        return;
    };
    let name = "é".repeat(100);
    let body = serde_json::json!({"name": name, "email": "@@@"}).to_string();
    create_user(&server, &body);
    let (id, _) = create_user(&server, ADA);
    let post = serde_json::json!({"title": "t", "body": ""}).to_string();
    assert_eq!(
        server
            .json("POST", &format!("/users/{id}/posts"), &[], &post)
            .status,
        201
    );
}

#[test]
fn reads_carry_etags_and_answer_304() {
    let Some(server) = Server::start() else {
        return;
    };
    let (id, etag) = create_user(&server, ADA);
    let reply = server.get(&format!("/users/{id}"), &[]);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("etag"), Some(etag.as_str()));
    let modified = reply.header("last-modified").unwrap().to_owned();
    let reply = server.get(&format!("/users/{id}"), &[("If-None-Match", &etag)]);
    assert_eq!(reply.status, 304);
    assert!(reply.body.is_empty());
    let reply = server.get(&format!("/users/{id}"), &[("If-Modified-Since", &modified)]);
    assert_eq!(reply.status, 304);
    let reply = server.get(&format!("/users/{id}"), &[("If-None-Match", "\"v999\"")]);
    assert_eq!(reply.status, 200);
    // HEAD: GET's headers, no body.
    let reply = server.send("HEAD", format!("/users/{id}").as_bytes(), &[], b"");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("etag"), Some(etag.as_str()));
    assert!(reply.body.is_empty());
}

#[test]
fn writes_need_a_current_if_match() {
    let Some(server) = Server::start() else {
        return;
    };
    let (id, etag) = create_user(&server, ADA);
    let path = format!("/users/{id}");
    let new = r#"{"name":"Ada L.","email":"ada@example.com"}"#;
    server.json("PUT", &path, &[], new).problem(428);
    server
        .send("DELETE", path.as_bytes(), &[], b"")
        .problem(428);
    server
        .json("PUT", &path, &[("If-Match", "\"v0\"")], new)
        .problem(412);
    server
        .json("PUT", &path, &[("If-Match", "not-an-etag")], new)
        .problem(400);
    let reply = server.json("PUT", &path, &[("If-Match", &etag)], new);
    assert_eq!(reply.status, 200, "{reply:?}");
    let fresh = reply.header("etag").unwrap().to_owned();
    assert_ne!(fresh, etag);
    assert_eq!(server.get(&path, &[]).json()["name"], "Ada L.");
    // The old ETag is stale now.
    server
        .send("DELETE", path.as_bytes(), &[("If-Match", &etag)], b"")
        .problem(412);
    let reply = server.send("DELETE", path.as_bytes(), &[("If-Match", &fresh)], b"");
    assert_eq!(reply.status, 204);
    server.get(&path, &[]).problem(404);
}

#[test]
fn idempotent_posts_replay_and_refuse_other_payloads() {
    let Some(server) = Server::start() else {
        return;
    };
    let key = [("Idempotency-Key", "signup-1")];
    let first = server.json("POST", "/users", &key, ADA);
    assert_eq!(first.status, 201);
    let again = server.json("POST", "/users", &key, ADA);
    assert_eq!(again.status, 201);
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("location"), first.header("location"));
    let other = r#"{"name":"Bob","email":"bob@example.com"}"#;
    server.json("POST", "/users", &key, other).problem(422);
    // Only one user was created.
    assert_eq!(
        server.get("/users", &[]).json()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    server
        .json("POST", "/users", &[("Idempotency-Key", "has space")], ADA)
        .problem(400);
    // Once the created user is deleted, a replay says so instead of pointing at nothing.
    let location = first.header("location").unwrap();
    let etag = first.header("etag").unwrap();
    let deleted = server.send("DELETE", location.as_bytes(), &[("If-Match", etag)], b"");
    assert_eq!(deleted.status, 204);
    server.json("POST", "/users", &key, ADA).problem(409);
}

#[test]
fn cursor_paging_with_link_and_tamper_evidence() {
    let Some(server) = Server::start() else {
        return;
    };
    for i in 0..5 {
        create_user(&server, &format!(r#"{{"name":"u{i}","email":"u{i}@x"}}"#));
    }
    let mut seen = Vec::new();
    let mut path = "/users?limit=2".to_owned();
    loop {
        let reply = server.get(&path, &[]);
        assert_eq!(reply.status, 200);
        let page = reply.json();
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["id"].as_i64().unwrap()),
        );
        let Some(link) = reply.header("link") else {
            assert!(page["next_cursor"].is_null());
            break;
        };
        let links = rest_core::parse_links(link).unwrap();
        assert_eq!(links[0].rel, "next");
        path = links[0].target.clone();
    }
    assert_eq!(seen, [1, 2, 3, 4, 5]);
    let page = server.get("/users?limit=2", &[]).json();
    let cursor = page["next_cursor"].as_str().unwrap();
    let mut forged = cursor.to_owned();
    forged.insert(0, 'A');
    server
        .get(&format!("/users?cursor={forged}"), &[])
        .problem(400);
    // A users cursor is refused by the posts collection.
    server
        .get(&format!("/posts?cursor={cursor}"), &[])
        .problem(400);
    server.get("/users?limit=0", &[]).problem(400);
    server.get("/users?limit=", &[]).problem(400);
}

/// Issue 14, finding 15: the cursor key came from the clock XOR the process id (guessable,
/// and different on every instance). Now it is random, or configured with `CURSOR_KEY`
/// so that instances behind one balancer accept each other's cursors.
#[test]
fn cursor_key_is_configured_or_random() {
    let key = "0123456789abcdef0123456789abcdef-shared";
    let Some(a) = Server::start_with_env(&[], &[("CURSOR_KEY", key)]) else {
        return;
    };
    let Some(b) = Server::start_with_env(&[], &[("CURSOR_KEY", key)]) else {
        return;
    };
    let Some(c) = Server::start() else { return };
    for server in [&a, &b, &c] {
        for i in 0..3 {
            create_user(server, &format!(r#"{{"name":"u{i}","email":"u{i}@x"}}"#));
        }
    }
    let page = a.get("/users?limit=2", &[]).json();
    let cursor = page["next_cursor"].as_str().unwrap();
    let next = b.get(&format!("/users?cursor={cursor}"), &[]);
    assert_eq!(next.status, 200, "{next:?}");
    assert_eq!(next.json()["items"][0]["id"], 3);
    c.get(&format!("/users?cursor={cursor}"), &[]).problem(400);
    // A key too short to be a secret is refused at start.
    let mut short = std::process::Command::new(env!("CARGO_BIN_EXE_rest-api"))
        .env("PORT", "0")
        .env("CURSOR_KEY", "short")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(!short.wait().unwrap().success());
}

#[test]
fn numbered_pages_link_first_last_prev_next() {
    let Some(server) = Server::start() else {
        return;
    };
    let (id, _) = create_user(&server, ADA);
    for i in 0..5 {
        let body = format!(r#"{{"title":"t{i}","body":"b"}}"#);
        assert_eq!(
            server
                .json("POST", &format!("/users/{id}/posts"), &[], &body)
                .status,
            201
        );
    }
    let reply = server.get(&format!("/users/{id}/posts?page=2&per_page=2"), &[]);
    let page = reply.json();
    assert_eq!(
        (
            page["total"].as_u64(),
            page["items"].as_array().unwrap().len()
        ),
        (Some(5), 2)
    );
    let links = rest_core::parse_links(reply.header("link").unwrap()).unwrap();
    let rel = |r: &str| links.iter().find(|l| l.rel == r).map(|l| l.target.clone());
    assert_eq!(
        rel("next").unwrap(),
        format!("/users/{id}/posts?page=3&per_page=2")
    );
    assert_eq!(
        rel("prev").unwrap(),
        format!("/users/{id}/posts?page=1&per_page=2")
    );
    assert_eq!(
        rel("last").unwrap(),
        format!("/users/{id}/posts?page=3&per_page=2")
    );
    server.get("/users/999/posts", &[]).problem(404);
    // Deleting the user removes their posts.
    let etag = server
        .get(&format!("/users/{id}"), &[])
        .header("etag")
        .unwrap()
        .to_owned();
    assert_eq!(
        server
            .send(
                "DELETE",
                format!("/users/{id}").as_bytes(),
                &[("If-Match", &etag)],
                b""
            )
            .status,
        204
    );
    assert_eq!(
        server.get("/posts", &[]).json()["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn cors_preflight_and_decoration() {
    let Some(server) = Server::start() else {
        return;
    };
    let reply = server.send(
        "OPTIONS",
        b"/users",
        &[
            ("Origin", "https://app.example"),
            ("Access-Control-Request-Method", "PUT"),
            ("Access-Control-Request-Headers", "content-type, if-match"),
        ],
        b"",
    );
    assert_eq!(reply.status, 204);
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let reply = server.send(
        "OPTIONS",
        b"/users",
        &[
            ("Origin", "https://evil.example"),
            ("Access-Control-Request-Method", "PUT"),
        ],
        b"",
    );
    reply.problem(403);
    let reply = server.get("/users", &[("Origin", "https://app.example")]);
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(reply.header("vary"), Some("Origin"));
    assert!(
        reply
            .header("access-control-expose-headers")
            .unwrap()
            .contains("etag")
    );
}

#[test]
fn bad_inputs_are_4xx_problems() {
    let Some(server) = Server::start() else {
        return;
    };
    // Oversized body (declared and actual).
    let big = format!(r#"{{"name":"{}","email":"a@b"}}"#, "x".repeat(70_000));
    server.json("POST", "/users", &[], &big).problem(413);
    // Deep nesting.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    server.json("POST", "/users", &[], &deep).problem(400);
    // Invalid UTF-8 in path and query, percent-encoding tricks in a path parameter.
    server.get("/users/%FF%FE", &[]).problem(400);
    server.get("/users/1%2F..", &[]).problem(400);
    server.get("/users/%31", &[]).problem(404);
    server.get("/users/99999999999999999999", &[]).problem(400);
    server.get("/users?cursor=%FF", &[]).problem(400);
    // Huge query string.
    server
        .get(&format!("/users?x={}", "a".repeat(9000)), &[])
        .problem(414);
    // Malformed Idempotency-Key.
    server
        .json("POST", "/users", &[("Idempotency-Key", "\"unclosed")], ADA)
        .problem(400);
}

#[test]
fn openapi_document_is_served() {
    let Some(server) = Server::start() else {
        return;
    };
    let doc = server.get("/openapi.json", &[]).json();
    assert_eq!(doc["openapi"], "3.1.0");
    let put = &doc["paths"]["/users/{id}"]["put"];
    for status in ["200", "400", "404", "412", "415", "422", "428"] {
        assert!(
            put["responses"][status].is_object(),
            "PUT /users/{{id}} documents {status}"
        );
    }
    assert_eq!(
        put["responses"]["412"]["content"]["application/problem+json"]["schema"]["$ref"],
        "#/components/schemas/ProblemDetails"
    );
    assert_eq!(
        doc["components"]["schemas"]["UserInput"]["additionalProperties"],
        false
    );
}

#[test]
fn a_database_file_survives_a_restart() {
    let dir = std::env::temp_dir().join(format!("rest-api-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("db.sqlite");
    let file = file.to_str().unwrap();
    {
        let Some(server) = Server::start_with(&["--db", file]) else {
            return;
        };
        create_user(&server, ADA);
    }
    let Some(server) = Server::start_with(&["--db", file]) else {
        return;
    };
    assert_eq!(server.get("/users/1", &[]).json()["name"], "Ada");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
