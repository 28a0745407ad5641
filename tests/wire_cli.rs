//! `zw-wire` as a user runs it: encode frames, decode them back from raw bytes and from
//! `hexdump -C` / `xxd` text, and report bad streams (`wire-spec.md`, section 8).

use std::io::Write;
use std::process::{Command, Stdio};

struct Run {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn text(&self) -> String {
        String::from_utf8(self.stdout.clone()).expect("decode output is UTF-8")
    }
}

fn zw_wire(args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_zw-wire"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("zw-wire starts");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().expect("zw-wire exited normally"),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn encode(args: &[&str]) -> Vec<u8> {
    let mut full = vec!["encode"];
    full.extend_from_slice(args);
    let run = zw_wire(&full, b"");
    assert_eq!(run.code, 0, "encode {args:?} failed: {}", run.stderr);
    run.stdout
}

const HELLO_LINE: &str = r#"#1 HELLO len=21 crc=ok server_id=1 cluster="zooweeper""#;
const PROPOSAL_LINE: &str = "#2 PROPOSAL len=62 crc=ok prev=0x100000002 zxid=0x100000003 \
    time=2023-11-14T22:13:20.000Z origin=2/17 create /a data=\"hi\"";

/// The two frames of the example in `wire-spec.md` section 8.
fn spec_example_capture() -> Vec<u8> {
    let mut cap = encode(&["hello", "--id", "1", "--cluster", "zooweeper"]);
    cap.extend(encode(&[
        "proposal",
        "--prev",
        "0x100000002",
        "--zxid",
        "0x100000003",
        "--time",
        "1700000000000",
        "--origin",
        "2/17",
        "--op",
        "create",
        "--path",
        "/a",
        "--data",
        "hi",
    ]));
    cap
}

#[test]
fn encoded_frames_decode_back_to_the_lines_the_spec_shows() {
    let run = zw_wire(&["decode"], &spec_example_capture());
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.text(), format!("{HELLO_LINE}\n{PROPOSAL_LINE}\n"));
    let spec =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/wire-spec.md")).unwrap();
    assert!(
        spec.contains(HELLO_LINE) && spec.contains(PROPOSAL_LINE),
        "spec example drifted"
    );
}

#[test]
fn decode_reads_a_file_argument() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cap.bin");
    std::fs::write(&path, spec_example_capture()).unwrap();
    let run = zw_wire(&["decode", path.to_str().unwrap()], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.text().lines().count(), 2);
}

#[test]
fn decode_parses_hexdump_c_text_from_the_encoder() {
    let text = encode(&["ping", "--zxid", "0x200000001", "--hexdump"]);
    assert!(text.starts_with(b"00000000  5a 57 02 05 00 00 00 08"));
    let run = zw_wire(&["decode"], &text);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.text(), "#1 PING len=8 crc=ok zxid=0x200000001\n");
}

#[test]
fn decode_parses_hexdump_c_with_squeezed_repeated_lines() {
    let tree = "0".repeat(100);
    let raw = encode(&["snapchunk", "--bytes", &tree]);
    let text = encode(&["snapchunk", "--bytes", &tree, "--hexdump"]);
    assert!(
        String::from_utf8_lossy(&text).contains("\n*\n"),
        "no squeezed line to test"
    );
    let from_text = zw_wire(&["decode"], &text);
    let from_raw = zw_wire(&["decode"], &raw);
    assert_eq!(from_text.code, 0, "{}", from_text.text());
    assert_eq!(from_text.text(), "#1 SNAPCHUNK len=104 crc=ok bytes=100\n");
    assert_eq!(from_text.text(), from_raw.text());
}

#[test]
fn decode_parses_a_golden_hexdump_from_the_spec() {
    let spec =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/wire-spec.md")).unwrap();
    let marker = "<!-- golden: proposal-create -->\n```text\n";
    let start = spec.find(marker).expect("golden proposal in the spec") + marker.len();
    let block = &spec[start..start + spec[start..].find("```").unwrap()];
    let run = zw_wire(&["decode"], block.as_bytes());
    assert_eq!(run.code, 0, "{}", run.text());
    assert_eq!(
        run.text(),
        "#1 PROPOSAL len=70 crc=ok prev=0x200000000 zxid=0x200000001 \
         time=2023-11-14T22:13:20.000Z origin=2/17 create /app/lock- data=\"hi\" sequential\n"
    );
}

#[test]
fn decode_parses_xxd_text() {
    let xxd = "00000000: 5a57 0205 0000 0008 68e5 bc9f 0000 0002  ZW......h.......\n\
               00000010: 0000 0001                                ....\n";
    let run = zw_wire(&["decode"], xxd.as_bytes());
    assert_eq!(run.code, 0, "{}", run.text());
    assert_eq!(run.text(), "#1 PING len=8 crc=ok zxid=0x200000001\n");
}

#[test]
fn truncated_stream_reports_the_offset_and_exits_1() {
    let cap = spec_example_capture();
    let run = zw_wire(&["decode"], &cap[..cap.len() - 5]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.text(),
        format!(
            "{HELLO_LINE}\nerror at offset 33: stream ends inside frame #2 \
             (PROPOSAL needs 74 bytes, 69 present)\n"
        )
    );
}

#[test]
fn corrupted_payload_is_a_checksum_error_and_decoding_stops() {
    let mut cap = spec_example_capture();
    cap.extend(encode(&["ping"]));
    cap[33 + 12 + 3] ^= 0xFF;
    let run = zw_wire(&["decode"], &cap);
    assert_eq!(run.code, 1);
    let text = run.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[1].starts_with("error at offset 33: checksum mismatch (frame #2 PROPOSAL"));
}

#[test]
fn four_letter_word_is_named_as_such() {
    let run = zw_wire(&["decode"], b"ruok\n");
    assert_eq!(run.code, 1);
    assert_eq!(
        run.text(),
        "error at offset 0: bad magic (starts with \"ruok\": a four-letter-word request, not frames)\n"
    );
}

#[test]
fn encode_refuses_options_that_do_not_apply_and_missing_ones() {
    let run = zw_wire(&["encode", "ping", "--cluster", "x"], b"");
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("--cluster does not apply"),
        "{}",
        run.stderr
    );
    let run = zw_wire(&["encode", "hello", "--id", "1"], b"");
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("--cluster is required"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
}

#[test]
fn help_lists_both_subcommands() {
    let run = zw_wire(&["--help"], b"");
    assert_eq!(run.code, 0);
    let text = run.text();
    assert!(text.contains("zw-wire decode [FILE]") && text.contains("zw-wire encode MSG"));
}

#[test]
fn every_message_type_can_be_encoded_and_decoded() {
    let cases: [(&[&str], &str); 17] = [
        (&["hello", "--id", "2", "--cluster", "c"], r#"HELLO len=13 crc=ok server_id=2 cluster="c""#),
        (
            &["notification", "--leader", "3", "--zxid", "0x100000002", "--epoch", "1", "--state", "following"],
            "NOTIFICATION len=29 crc=ok leader=3 zxid=0x100000002 peer_epoch=1 round=1 state=following",
        ),
        (
            &["request", "--req", "7", "--op", "setdata", "--path", "/a", "--data", "x\n", "--version", "3"],
            r#"REQUEST len=25 crc=ok req=7 setData /a data="x\n" version=3"#,
        ),
        (
            &["proposal", "--zxid", "0x100000001", "--op", "putprocess", "--sender", "9090"],
            "PROPOSAL len=61 crc=ok prev=0x0 zxid=0x100000001 time=1970-01-01T00:00:00.000Z \
             origin=0/0 putProcess sender=\"9090\" receiver=\"\" timestamp=\"\" clients=\"\"",
        ),
        (&["ack", "--zxid", "12"], "ACK len=8 crc=ok zxid=0xc"),
        (&["commit"], "COMMIT len=8 crc=ok zxid=0x0"),
        (&["ping", "--zxid", "0x1"], "PING len=8 crc=ok zxid=0x1"),
        (&["newleader", "--zxid", "0x200000000"], "NEWLEADER len=8 crc=ok zxid=0x200000000"),
        (
            &["followerinfo", "--epoch", "1", "--zxid", "0x100000002"],
            "FOLLOWERINFO len=12 crc=ok accepted_epoch=1 last_zxid=0x100000002",
        ),
        (
            &["uptodate", "--zxid", "0x100000002", "--digest", "42"],
            "UPTODATE len=16 crc=ok commit=0x100000002 digest=0x000000000000002a",
        ),
        (&["diff", "--zxid", "0x2"], "DIFF len=8 crc=ok zxid=0x2"),
        (&["trunc", "--zxid", "0x1"], "TRUNC len=8 crc=ok zxid=0x1"),
        (&["snap", "--zxid", "0x3"], "SNAP len=8 crc=ok zxid=0x3"),
        (&["snapchunk", "--bytes", "abc"], "SNAPCHUNK len=7 crc=ok bytes=3"),
        (
            &["snapend", "--total", "3", "--crc", "0x352441c2"],
            "SNAPEND len=12 crc=ok total=3 crc=352441c2",
        ),
        (&["leaderinfo", "--epoch", "2"], "LEADERINFO len=4 crc=ok epoch=2"),
        (
            &["ackepoch", "--epoch", "1", "--zxid", "0x100000002", "--already-accepted"],
            "ACKEPOCH len=13 crc=ok current_epoch=1 last_zxid=0x100000002 already_accepted=true",
        ),
    ];
    let mut stream = Vec::new();
    let mut expected = String::new();
    for (i, (args, line)) in cases.iter().enumerate() {
        stream.extend(encode(args));
        expected.push_str(&format!("#{} {line}\n", i + 1));
    }
    let run = zw_wire(&["decode"], &stream);
    assert_eq!(run.code, 0, "{}", run.text());
    assert_eq!(run.text(), expected);
}

#[test]
fn authentication_frames_encode_and_decode_with_their_hex_fields() {
    let nonce: String = (0..32u8).map(|b| format!("{b:02x}")).collect();
    let mac = "87f057fabf99dd040424bf93933782cf03f6675f7e2aec5e8fee293c9bc420ab";
    let mut cap = encode(&["hello", "--id", "3", "--cluster", "zooweeper"]);
    cap.extend(encode(&["authchallenge", "--nonce", &nonce]));
    cap.extend(encode(&["authproof", "--mac", mac]));
    let run = zw_wire(&["decode"], &cap);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<String> = run.text().lines().map(str::to_string).collect();
    assert_eq!(
        lines[1],
        format!("#2 AUTHCHALLENGE len=32 crc=ok nonce={nonce}")
    );
    assert_eq!(lines[2], format!("#3 AUTHPROOF len=32 crc=ok mac={mac}"));
    // A nonce that is not 32 bytes of hex is a usage error, not a frame.
    let run = zw_wire(&["encode", "authchallenge", "--nonce", "abcd"], b"");
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("64 hex digits"), "{}", run.stderr);
}
