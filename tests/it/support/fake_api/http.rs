//! The fake API's transport: the accept loop, one thread per connection, reading one
//! HTTP/1.1 request (`Content-Length` or chunked body) and writing one answer (JSON, an SSE
//! stream, or nothing until shutdown), always with `Connection: close`.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;

use super::script::route;
use super::{Request, Shared, lock};

pub(super) fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.shutdown.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        let handler = {
            let shared = Arc::clone(shared);
            std::thread::Builder::new()
                .name("fake-api-conn".into())
                .spawn(move || serve_connection(&stream, &shared))
        };
        let Ok(handler) = handler else { continue };
        let mut state = lock(shared);
        state.conns.push((clone, handler));
        // Forget finished connections so a long test does not pile them up.
        let (done, open): (Vec<_>, Vec<_>) = std::mem::take(&mut state.conns)
            .into_iter()
            .partition(|(_, h)| h.is_finished());
        state.conns = open;
        drop(state);
        for (_, handler) in done {
            let _ = handler.join();
        }
    }
}

fn serve_connection(stream: &TcpStream, shared: &Shared) {
    // Generous: the CLI sends its request right away; this only bounds a broken client.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(120)));
    let mut reader = BufReader::new(stream);
    // One request per connection: every answer says `Connection: close`.
    let Ok(Some(request)) = read_request(&mut reader) else {
        return;
    };
    let answer = route(request, shared);
    let mut out = stream;
    let _ = answer.write_to(&mut out, shared);
    let _ = out.flush();
    let _ = stream.shutdown(Shutdown::Both);
}

/// What to send back.
pub(super) enum Answer {
    Json(u16, Value),
    /// SSE events, each named by its `type` (`event: <type>`).
    Stream(Vec<Value>),
    /// SSE events as bare `data:` lines (the Gemini API's `alt=sse`).
    Data(Vec<Value>),
    Hang,
}

impl Answer {
    fn write_to(&self, out: &mut impl Write, shared: &Shared) -> io::Result<()> {
        match self {
            Answer::Json(status, body) => {
                let body = body.to_string();
                write!(
                    out,
                    "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\n\
                     request-id: req_fake_{}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    reason(*status),
                    shared.next_id.fetch_add(1, Ordering::SeqCst),
                    body.len(),
                )
            }
            Answer::Stream(events) | Answer::Data(events) => {
                write!(
                    out,
                    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n\
                     cache-control: no-cache\r\nrequest-id: req_fake_{}\r\nconnection: close\r\n\r\n",
                    shared.next_id.fetch_add(1, Ordering::SeqCst),
                )?;
                let named = matches!(self, Answer::Stream(_));
                for event in events {
                    if named {
                        let name = event["type"].as_str().unwrap_or("message");
                        writeln!(out, "event: {name}")?;
                    }
                    write!(out, "data: {event}\n\n")?;
                    out.flush()?;
                }
                Ok(())
            }
            Answer::Hang => {
                let mut state = lock(shared);
                while !shared.shutdown.load(Ordering::SeqCst) {
                    state = shared
                        .released
                        .wait(state)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
                Ok(())
            }
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        529 => "Overloaded",
        _ => "Error",
    }
}

/// One HTTP/1.1 request: request line, headers, and a `Content-Length` or chunked body.
fn read_request(reader: &mut impl BufRead) -> io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return Ok(None);
    };
    let (method, path) = (method.to_owned(), path.to_owned());
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = line.trim().split(';').next().unwrap_or_default();
            let size = usize::from_str_radix(size, 16)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            if size == 0 {
                // Trailers, up to the empty line.
                while reader.read_line(&mut line)? > 0 && line.trim() != "" {
                    line.clear();
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..])?;
            line.clear();
            reader.read_line(&mut line)?;
        }
    } else if let Some(length) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
    }
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Ok(Some(Request {
        method,
        path,
        headers,
        body,
        main: false,
        key: None,
    }))
}
