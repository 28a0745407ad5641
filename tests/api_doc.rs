//! docs/api.md's examples are the API: every `curl` command under an `<!-- example -->`
//! marker is run, in order, against a fresh 3-server ensemble (with `localhost:808N`
//! standing for server N+1), and must answer the status written under it. `-> NAME=.field`
//! keeps a field of the JSON answer for `$NAME` in later commands.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::{Cluster, Options};

/// Splits a shell command line into words, honouring single and double quotes.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

struct Example {
    line: String,
    status: u16,
    keep: Option<(String, String)>,
}

fn examples(doc: &str) -> Vec<Example> {
    let mut out = Vec::new();
    let mut in_block = false;
    let mut armed = false;
    let mut pending: Option<String> = None;
    for line in doc.lines() {
        let t = line.trim();
        if t == "<!-- example -->" {
            armed = true;
        } else if armed && t == "```sh" {
            in_block = true;
            armed = false;
        } else if in_block && t == "```" {
            in_block = false;
        } else if in_block && t.starts_with("curl ") {
            pending = Some(t.to_string());
        } else if in_block && t.starts_with("# ") {
            let cmd = pending
                .take()
                .unwrap_or_else(|| panic!("{t:?} follows no command"));
            let rest = &t[2..];
            let (status, keep) = match rest.split_once(" -> ") {
                Some((s, k)) => {
                    let (name, field) = k.split_once("=.").expect("-> NAME=.field");
                    (s, Some((name.to_string(), field.to_string())))
                }
                None => (rest, None),
            };
            out.push(Example {
                line: cmd,
                status: status.trim().parse().expect("a status"),
                keep,
            });
        }
    }
    out
}

#[test]
fn every_example_in_the_api_doc_answers_as_written() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md"))
        .expect("docs/api.md");
    let all = examples(&doc);
    assert!(all.len() >= 30, "only {} examples found", all.len());
    let cluster = Cluster::start(3, Options::for_tests());
    cluster.wait_all_serving();
    let agent = support::agent(Duration::from_secs(10));
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    for ex in &all {
        let mut line = ex.line.clone();
        for (k, v) in &vars {
            line = line.replace(&format!("${k}"), v);
        }
        for i in 0..3u64 {
            let base = cluster.url(i + 1);
            line = line.replace(
                &format!("localhost:{}", 8080 + i),
                base.trim_start_matches("http://"),
            );
        }
        let w = words(&line);
        let (mut method, mut body, mut url) = ("GET".to_string(), None, None);
        let mut headers: Vec<(String, String)> = Vec::new();
        let mut it = w.iter().skip(1);
        while let Some(a) = it.next() {
            match a.as_str() {
                "-s" => {}
                "-d" => body = it.next().cloned(),
                "-H" => {
                    let h = it.next().expect("-H needs a header");
                    let (name, value) = h.split_once(':').expect("-H 'Name: value'");
                    headers.push((name.trim().to_string(), value.trim().to_string()));
                }
                m if m.starts_with("-X") => method = m[2..].to_string(),
                u => url = Some(format!("http://{u}")),
            }
        }
        let url = url.unwrap_or_else(|| panic!("no URL in {line}"));
        let mut req = agent.request(&method, &url);
        for (name, value) in &headers {
            req = req.set(name, value);
        }
        let resp = match &body {
            Some(b) => req.send_string(b),
            None => req.call(),
        };
        let (status, text) = match resp {
            Ok(r) | Err(ureq::Error::Status(_, r)) => {
                (r.status(), r.into_string().unwrap_or_default())
            }
            Err(e) => panic!("{line}: {e}"),
        };
        assert_eq!(
            status, ex.status,
            "{}\n  answered {status}: {text}",
            ex.line
        );
        if let Some((name, field)) = &ex.keep {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            let value = match &v[field.as_str()] {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            vars.insert(name.clone(), value);
        }
    }
}
