//! `zw-wire`: decode and encode ZooWeeper peer protocol frames (`wire-spec.md`), for
//! debugging with netcat and hexdump.

use std::error::Error;
use std::io::{Read, Write};
use std::process::ExitCode;

use zooweeper::wire::{
    decode_frame, encode_frame, type_name, DecodeError, FrameHeader, PeerMsg, TxnOp, HEADER_BYTES,
};

mod hexfmt {
    //! `hexdump -C`, `xxd` and plain hex text, both ways.

    pub use zooweeper::wire::hexdump_c;

    /// Which text format `text` is in, judged by its first non-blank line.
    pub fn detect(text: &str) -> Option<&'static str> {
        let first = text.lines().find(|l| !l.trim().is_empty())?.trim_end();
        let b = first.as_bytes();
        let offset = b.len() >= 8 && b[..8].iter().all(u8::is_ascii_hexdigit);
        if offset && first[8..].starts_with("  ") {
            Some("hexdump -C")
        } else if offset && first[8..].starts_with(':') {
            Some("xxd")
        } else if text
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c.is_whitespace())
        {
            Some("plain hex")
        } else {
            None
        }
    }

    /// Parses text in the format `detect` named.
    pub fn parse(format: &str, text: &str) -> Result<Vec<u8>, String> {
        match format {
            "hexdump -C" => parse_hexdump_c(text),
            "xxd" => parse_xxd(text),
            _ => parse_plain(&text.split_whitespace().collect::<String>(), 1),
        }
    }

    fn parse_plain(hex: &str, line: usize) -> Result<Vec<u8>, String> {
        if hex.len() % 2 != 0 {
            return Err(format!("line {line}: odd number of hex digits"));
        }
        (0..hex.len())
            .step_by(2)
            .map(|i| {
                u8::from_str_radix(&hex[i..i + 2], 16)
                    .map_err(|_| format!("line {line}: {:?} is not hex", &hex[i..i + 2]))
            })
            .collect()
    }

    /// Largest output a `*` line may expand to, so a hostile dump cannot exhaust memory.
    const MAX_EXPANDED: u64 = 256 * 1024 * 1024;

    fn parse_hexdump_c(text: &str) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let mut last: Option<(u64, Vec<u8>)> = None;
        let mut repeat = false;
        for (n, line) in text.lines().enumerate().map(|(n, l)| (n + 1, l.trim_end())) {
            if line.is_empty() {
                continue;
            }
            if line == "*" {
                repeat = true;
                continue;
            }
            let (off, rest) = line.split_at(line.find(' ').unwrap_or(line.len()));
            let off = u64::from_str_radix(off, 16)
                .map_err(|_| format!("line {n}: {off:?} is not a hexdump offset"))?;
            if std::mem::take(&mut repeat) {
                let (from, bytes) = last.as_ref().ok_or(format!("line {n}: '*' first"))?;
                if off < *from || off > MAX_EXPANDED {
                    return Err(format!("line {n}: offset {off:#x} does not follow '*'"));
                }
                for _ in 1..(off - from) / 16 {
                    out.extend_from_slice(bytes);
                }
            }
            let bytes: Vec<u8> = rest
                .split_whitespace()
                .take(16)
                .map_while(|t| (t.len() == 2).then(|| u8::from_str_radix(t, 16).ok())?)
                .collect();
            if !bytes.is_empty() {
                out.extend_from_slice(&bytes);
                last = Some((off, bytes));
            }
        }
        Ok(out)
    }

    fn parse_xxd(text: &str) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        for (n, line) in text.lines().enumerate().map(|(n, l)| (n + 1, l)) {
            if line.trim().is_empty() {
                continue;
            }
            let rest = line
                .split_once(':')
                .ok_or(format!("line {n}: no ':' after the offset"))?
                .1;
            let hex_area = rest.strip_prefix(' ').unwrap_or(rest);
            let hex_area = hex_area.split("  ").next().unwrap_or("");
            out.extend(parse_plain(&hex_area.replace(' ', ""), n)?);
        }
        Ok(out)
    }
}

const HELP: &str = "\
zw-wire: decode and encode ZooWeeper peer protocol frames (see wire-spec.md).

USAGE:
    zw-wire decode [FILE]            decode a captured byte stream (FILE or stdin, '-' = stdin)
    zw-wire encode MSG [OPTIONS]     write one frame to stdout (raw bytes, or --hexdump)
    zw-wire --help                   this text

DECODE
    The input is either the raw bytes of a connection (e.g. `nc -l 127.0.0.1 2888 > cap.bin`)
    or text from `hexdump -C`, `xxd`, or plain hex digits; text formats are detected from the
    first line. One line is printed per frame:
        #3 PROPOSAL len=57 crc=ok prev=0x100000002 zxid=0x100000003 time=... origin=2/17 create /a data=\"hi\"
    At the first bad frame it prints `error at offset N: REASON` and stops, as a server closes
    the connection. Exit status: 0 if every frame was valid, 1 if not, 2 on a usage error.

ENCODE
    MSG and its options (zxids are 0x-hex or decimal; defaults in brackets):
        hello         --id N --cluster NAME
        authchallenge --nonce HEX                     (64 hex digits: 32 bytes)
        authproof     --mac HEX                       (64 hex digits: the HMAC-SHA256)
        notification  --leader N [--zxid 0] [--epoch 0] [--round 1] [--state looking|following|leading]
        ping | ack | commit | newleader | diff | trunc   [--zxid 0]
        uptodate                               [--zxid 0] [--digest 0]
        followerinfo  [--epoch 0] [--zxid 0]          (accepted epoch, last logged zxid)
        leaderinfo    --epoch N
        ackepoch      [--epoch 0] [--zxid 0] [--already-accepted]
        snap          [--zxid 0]                      (a snapshot stream begins)
        snapchunk     (--bytes TEXT | --bytes-file PATH)   (the next bytes of the tree)
        snapend       --total N --crc N                (CRC-32 of the chunks, 0x-hex or decimal)
        touch         [--sessions ID,ID,...]            (session ids heard from, 0x-hex or decimal)
        sync          --req N                          (a follower asks the leader's commit point)
        syncreply     --req N [--zxid 0]               (the leader's commit point)
        confirm | confirmed --round N                  (a sync's quorum round)
        request       --req N OP
        proposal      --zxid Z [--prev 0] [--time MS 0] [--origin SERVER/REQ 0/0] OP
    OP is one of (version: absent = any version):
        --op create     --path P [--data TEXT] [--sequential] [--ephemeral-owner N]
        --op delete     --path P [--version V]
        --op setdata    --path P [--data TEXT] [--version V]
        --op putprocess [--sender S] [--receiver R] [--timestamp T] [--clients C]
        --op putevent   [--sender S] [--receiver R] [--timestamp T] [--clients C]
                        [--data GAMERESULTS-JSON] [--retain N]
    --hexdump prints the frame as `hexdump -C` text instead of raw bytes.

EXAMPLES
    zw-wire encode hello --id 1 --cluster zooweeper | hexdump -C
    (zw-wire encode hello --id 9 --cluster zooweeper; zw-wire encode ping) | nc -q1 HOST PEERPORT | zw-wire decode
    nc -l 127.0.0.1 2888 > cap.bin; zw-wire decode cap.bin

The peer port also answers ZooKeeper's four-letter words: `echo ruok | nc HOST PEERPORT`
prints `imok` (also srvr, stat, mntr, conf, envi). A stream starting with one of them is
not frames; decode reports it as such.
";

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("zw-wire: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<ExitCode, Box<dyn Error>> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_env();
    match parser.next()? {
        Some(Long("help") | Short('h')) | None => {
            print!("{HELP}");
            Ok(ExitCode::SUCCESS)
        }
        Some(Value(cmd)) if cmd == "decode" => decode_cmd(parser),
        Some(Value(cmd)) if cmd == "encode" => encode_cmd(parser),
        Some(other) => Err(format!("{}; try zw-wire --help", other.unexpected()).into()),
    }
}

fn decode_cmd(mut parser: lexopt::Parser) -> Result<ExitCode, Box<dyn Error>> {
    use lexopt::prelude::*;
    let mut file: Option<String> = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Long("help") | Short('h') => {
                print!("{HELP}");
                return Ok(ExitCode::SUCCESS);
            }
            Value(v) if file.is_none() => file = Some(v.string()?),
            other => return Err(other.unexpected().into()),
        }
    }
    let mut raw = Vec::new();
    match file.as_deref() {
        None | Some("-") => std::io::stdin().read_to_end(&mut raw)?,
        Some(path) => std::fs::File::open(path)
            .map_err(|e| format!("cannot read {path}: {e}"))?
            .read_to_end(&mut raw)?,
    };
    let bytes = input_bytes(raw)?;
    let out = std::io::stdout();
    let ok = decode_stream(&bytes, &mut out.lock())?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The stream's bytes: the input itself, or the bytes a hex text describes.
fn input_bytes(raw: Vec<u8>) -> Result<Vec<u8>, String> {
    if raw.starts_with(b"ZW") {
        return Ok(raw);
    }
    match std::str::from_utf8(&raw)
        .ok()
        .and_then(|t| Some((t, hexfmt::detect(t)?)))
    {
        Some((text, format)) => hexfmt::parse(format, text).map_err(|e| format!("{format}: {e}")),
        None => Ok(raw),
    }
}

/// Prints one line per frame; stops at the first bad one. Returns whether all were valid.
fn decode_stream(bytes: &[u8], out: &mut impl Write) -> std::io::Result<bool> {
    let mut at = 0;
    let mut n = 1;
    while at < bytes.len() {
        let rest = &bytes[at..];
        match decode_frame(rest) {
            Ok(Some((h, msg))) => {
                writeln!(
                    out,
                    "#{n} {} len={} crc=ok {}",
                    msg.name(),
                    h.len,
                    describe(&msg)
                )?;
                at += h.frame_len();
                n += 1;
            }
            Ok(None) => {
                writeln!(out, "error at offset {at}: {}", truncated(n, rest))?;
                return Ok(false);
            }
            Err(e) => {
                writeln!(out, "error at offset {at}: {e}{}", error_detail(e, n, rest))?;
                return Ok(false);
            }
        }
    }
    Ok(true)
}

fn truncated(n: usize, rest: &[u8]) -> String {
    match FrameHeader::parse(rest) {
        Ok(Some(h)) => format!(
            "stream ends inside frame #{n} ({} needs {} bytes, {} present)",
            type_name(h.msg_type).unwrap_or("?"),
            h.frame_len(),
            rest.len()
        ),
        _ => format!(
            "stream ends inside the header of frame #{n} ({} of {HEADER_BYTES} bytes)",
            rest.len()
        ),
    }
}

const FOUR_LETTER_WORDS: [&[u8]; 6] = [b"ruok", b"srvr", b"mntr", b"stat", b"conf", b"envi"];

fn error_detail(e: DecodeError, n: usize, rest: &[u8]) -> String {
    let head = &rest[..rest.len().min(HEADER_BYTES)];
    let hex: Vec<String> = head.iter().map(|b| format!("{b:02x}")).collect();
    match e {
        DecodeError::BadMagic if FOUR_LETTER_WORDS.iter().any(|w| rest.starts_with(w)) => {
            format!(
                " (starts with {:?}: a four-letter-word request, not frames)",
                String::from_utf8_lossy(&rest[..4])
            )
        }
        DecodeError::BadChecksum | DecodeError::Malformed => {
            let Ok(Some(h)) = FrameHeader::parse(rest) else {
                return String::new();
            };
            let payload = &rest[HEADER_BYTES..h.frame_len()];
            format!(
                " (frame #{n} {} len={} crc={:#010x}, payload crc={:#010x})",
                type_name(h.msg_type).unwrap_or("?"),
                h.len,
                h.crc,
                crc32fast::hash(payload)
            )
        }
        _ => format!(" (frame #{n} header bytes: {})", hex.join(" ")),
    }
}

/// The message's fields, for a decode line.
fn describe(msg: &PeerMsg) -> String {
    match msg {
        PeerMsg::Hello { server_id, cluster } => format!("server_id={server_id} cluster={cluster:?}"),
        PeerMsg::AuthChallenge { nonce } => format!("nonce={}", hex32(nonce)),
        PeerMsg::AuthProof { mac } => format!("mac={}", hex32(mac)),
        PeerMsg::Notification { vote, round, state } => format!(
            "leader={} zxid={} peer_epoch={} round={round} state={}",
            vote.leader,
            vote.zxid,
            vote.peer_epoch,
            format!("{state:?}").to_lowercase()
        ),
        PeerMsg::Request { req, op } => format!("req={req} {}", crate::op_line(op)),
        PeerMsg::Proposal { prev, txn } => format!(
            "prev={prev} zxid={} time={} origin={}/{} {}",
            txn.zxid,
            utc(txn.time_ms),
            txn.origin.server,
            txn.origin.req,
            crate::op_line(&txn.op)
        ),
        PeerMsg::Ack { zxid }
        | PeerMsg::Commit { zxid }
        | PeerMsg::Ping { zxid }
        | PeerMsg::NewLeader { zxid }
        | PeerMsg::Diff { zxid }
        | PeerMsg::Trunc { zxid } => format!("zxid={zxid}"),
        PeerMsg::UpToDate { commit, digest } => format!("commit={commit} digest={digest:#018x}"),
        PeerMsg::FollowerInfo {
            accepted_epoch,
            last_zxid,
        } => format!("accepted_epoch={accepted_epoch} last_zxid={last_zxid}"),
        PeerMsg::Snap { zxid } => format!("zxid={zxid}"),
        PeerMsg::SnapChunk { bytes } => format!("bytes={}", bytes.len()),
        PeerMsg::Sync { req } => format!("req={req}"),
        PeerMsg::Confirm { round } | PeerMsg::Confirmed { round } => format!("round={round}"),
        PeerMsg::SyncReply { req, zxid } => format!("req={req} zxid={zxid}"),
        PeerMsg::Touch { sessions } => {
            let ids: Vec<String> = sessions.iter().map(|s| format!("{s:#x}")).collect();
            format!("sessions=[{}]", ids.join(","))
        }
        PeerMsg::SnapEnd { total_bytes, crc } => format!("total={total_bytes} crc={crc:08x}"),
        PeerMsg::LeaderInfo { epoch } => format!("epoch={epoch}"),
        PeerMsg::AckEpoch {
            current_epoch,
            last_zxid,
            already_accepted,
        } => format!(
            "current_epoch={current_epoch} last_zxid={last_zxid} already_accepted={already_accepted}"
        ),
    }
}

/// A nonce or MAC as 64 lower-case hex digits.
fn hex32(b: &[u8; 32]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `--name` as exactly 32 bytes written in 64 hex digits.
fn req_hex32(o: &mut Opts, name: &str) -> Result<[u8; 32], String> {
    let v = o.req(name)?;
    let bad = || format!("--{name} {v:?}: expected 64 hex digits (32 bytes)");
    if v.len() != 64 || !v.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&v[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// Milliseconds since the Unix epoch as an ISO-8601 UTC time.
fn utc(ms: u64) -> String {
    zooweeper::types::utc_string(ms.saturating_mul(1_000_000), 3)
}

/// `--name value` options of an encode command, taken one by one by the message builders;
/// any left over is an error.
struct Opts(std::collections::BTreeMap<String, String>);

const FLAGS: [&str; 3] = ["sequential", "already-accepted", "hexdump"];

impl Opts {
    fn take(&mut self, name: &str) -> Option<String> {
        self.0.remove(name)
    }

    fn req(&mut self, name: &str) -> Result<String, String> {
        self.take(name).ok_or(format!("--{name} is required"))
    }

    fn flag(&mut self, name: &str) -> bool {
        self.take(name).is_some()
    }

    fn num<T: std::str::FromStr>(&mut self, name: &str, default: T) -> Result<T, String> {
        self.take(name).map_or(Ok(default), |v| parse_num(name, &v))
    }

    fn req_num<T: std::str::FromStr>(&mut self, name: &str) -> Result<T, String> {
        parse_num(name, &self.req(name)?)
    }

    fn zxid(&mut self, name: &str) -> Result<zooweeper::zab::Zxid, String> {
        let Some(v) = self.take(name) else {
            return Ok(zooweeper::zab::Zxid::ZERO);
        };
        let parsed = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => v.parse().ok(),
        };
        parsed
            .map(zooweeper::zab::Zxid)
            .ok_or(format!("--{name} {v:?}: not a zxid (0x-hex or decimal)"))
    }
}

fn parse_num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("--{name} {v:?}: not a valid number"))
}

fn encode_cmd(mut parser: lexopt::Parser) -> Result<ExitCode, Box<dyn Error>> {
    use lexopt::prelude::*;
    let mut kind: Option<String> = None;
    let mut opts = Opts(Default::default());
    while let Some(arg) = parser.next()? {
        match arg {
            Long("help") | Short('h') => {
                print!("{HELP}");
                return Ok(ExitCode::SUCCESS);
            }
            Long(name) if FLAGS.contains(&name) => {
                opts.0.insert(name.to_string(), String::new());
            }
            Long(name) => {
                let name = name.to_string();
                let value = parser.value()?.string()?;
                if opts.0.insert(name.clone(), value).is_some() {
                    return Err(format!("--{name} given twice").into());
                }
            }
            Value(v) if kind.is_none() => kind = Some(v.string()?.to_lowercase()),
            other => return Err(other.unexpected().into()),
        }
    }
    let kind = kind.ok_or("encode: which message? try zw-wire --help")?;
    let hexdump = opts.flag("hexdump");
    let msg = build_msg(&kind, &mut opts)?;
    if let Some(name) = opts.0.keys().next() {
        return Err(format!("encode {kind}: --{name} does not apply to this message").into());
    }
    let mut frame = Vec::new();
    encode_frame(&msg, &mut frame);
    let mut out = std::io::stdout().lock();
    if hexdump {
        out.write_all(hexfmt::hexdump_c(&frame).as_bytes())?;
    } else {
        out.write_all(&frame)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn build_msg(kind: &str, o: &mut Opts) -> Result<PeerMsg, String> {
    use zooweeper::wire::{PeerState, Vote};
    Ok(match kind {
        "hello" => PeerMsg::Hello {
            server_id: o.req_num("id")?,
            cluster: o.req("cluster")?,
        },
        "notification" => PeerMsg::Notification {
            vote: Vote {
                leader: o.req_num("leader")?,
                zxid: o.zxid("zxid")?,
                peer_epoch: o.num("epoch", 0)?,
            },
            round: o.num("round", 1)?,
            state: match o.take("state").as_deref() {
                None | Some("looking") => PeerState::Looking,
                Some("following") => PeerState::Following,
                Some("leading") => PeerState::Leading,
                Some(s) => return Err(format!("--state {s:?}: looking, following or leading")),
            },
        },
        "authchallenge" => PeerMsg::AuthChallenge {
            nonce: req_hex32(o, "nonce")?,
        },
        "authproof" => PeerMsg::AuthProof {
            mac: req_hex32(o, "mac")?,
        },
        "uptodate" => PeerMsg::UpToDate {
            commit: o.zxid("zxid")?,
            digest: o.num("digest", 0)?,
        },
        "ping" | "ack" | "commit" | "newleader" | "diff" | "trunc" => {
            zxid_msg(kind, o.zxid("zxid")?)
        }
        "followerinfo" => PeerMsg::FollowerInfo {
            accepted_epoch: o.num("epoch", 0)?,
            last_zxid: o.zxid("zxid")?,
        },
        "leaderinfo" => PeerMsg::LeaderInfo {
            epoch: o.req_num("epoch")?,
        },
        "ackepoch" => PeerMsg::AckEpoch {
            current_epoch: o.num("epoch", 0)?,
            last_zxid: o.zxid("zxid")?,
            already_accepted: o.flag("already-accepted"),
        },
        "snap" => PeerMsg::Snap {
            zxid: o.zxid("zxid")?,
        },
        "snapchunk" => PeerMsg::SnapChunk {
            bytes: chunk_bytes(o)?,
        },
        "confirm" => PeerMsg::Confirm {
            round: o.req_num("round")?,
        },
        "confirmed" => PeerMsg::Confirmed {
            round: o.req_num("round")?,
        },
        "sync" => PeerMsg::Sync {
            req: o.req_num("req")?,
        },
        "syncreply" => PeerMsg::SyncReply {
            req: o.req_num("req")?,
            zxid: o.zxid("zxid")?,
        },
        "touch" => PeerMsg::Touch {
            sessions: o
                .take("sessions")
                .unwrap_or_default()
                .split(',')
                .filter(|p| !p.is_empty())
                .map(|p| parse_hex_or_dec64("sessions", p))
                .collect::<Result<_, _>>()?,
        },
        "snapend" => PeerMsg::SnapEnd {
            total_bytes: o.req_num("total")?,
            crc: parse_hex_or_dec("crc", &o.req("crc")?)?,
        },
        "request" => PeerMsg::Request {
            req: o.req_num("req")?,
            op: build_op(o)?,
        },
        "proposal" => build_proposal(o)?,
        _ => {
            return Err(format!(
                "encode: unknown message {kind:?}; try zw-wire --help"
            ))
        }
    })
}

/// The messages whose only field is a zxid.
fn zxid_msg(kind: &str, zxid: zooweeper::zab::Zxid) -> PeerMsg {
    match kind {
        "ping" => PeerMsg::Ping { zxid },
        "ack" => PeerMsg::Ack { zxid },
        "commit" => PeerMsg::Commit { zxid },
        "newleader" => PeerMsg::NewLeader { zxid },
        "diff" => PeerMsg::Diff { zxid },
        "trunc" => PeerMsg::Trunc { zxid },
        _ => PeerMsg::UpToDate {
            commit: zxid,
            digest: 0,
        },
    }
}

fn build_proposal(o: &mut Opts) -> Result<PeerMsg, String> {
    if !o.0.contains_key("zxid") {
        return Err("--zxid is required".into());
    }
    Ok(PeerMsg::Proposal {
        prev: o.zxid("prev")?,
        txn: zooweeper::wire::Txn {
            zxid: o.zxid("zxid")?,
            time_ms: o.num("time", 0)?,
            origin: match o.take("origin") {
                None => zooweeper::wire::Origin::default(),
                Some(v) => parse_origin(&v)?,
            },
            op: build_op(o)?,
        },
    })
}

fn chunk_bytes(o: &mut Opts) -> Result<Vec<u8>, String> {
    match (o.take("bytes"), o.take("bytes-file")) {
        (Some(t), None) => Ok(t.into_bytes()),
        (None, Some(path)) => std::fs::read(&path).map_err(|e| format!("cannot read {path}: {e}")),
        _ => Err("snapchunk needs exactly one of --bytes TEXT or --bytes-file PATH".into()),
    }
}

fn parse_hex_or_dec64(name: &str, v: &str) -> Result<u64, String> {
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).map_err(|e| format!("--{name} {v:?}: {e}")),
        None => parse_num(name, v),
    }
}

fn parse_hex_or_dec(name: &str, v: &str) -> Result<u32, String> {
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).map_err(|e| format!("--{name} {v:?}: {e}")),
        None => parse_num(name, v),
    }
}

fn parse_origin(v: &str) -> Result<zooweeper::wire::Origin, String> {
    let (s, r) = v
        .split_once('/')
        .ok_or(format!("--origin {v:?}: expected SERVER/REQ"))?;
    Ok(zooweeper::wire::Origin {
        server: parse_num("origin", s)?,
        req: parse_num("origin", r)?,
    })
}

fn build_op(o: &mut Opts) -> Result<TxnOp, String> {
    let version = |o: &mut Opts| -> Result<Option<i32>, String> {
        match o.take("version") {
            None => Ok(None),
            Some(v) => match parse_num::<i32>("version", &v)? {
                -1 => Ok(None),
                n if n >= 0 => Ok(Some(n)),
                n => Err(format!("--version {n}: must be -1 (any) or at least 0")),
            },
        }
    };
    let data = |o: &mut Opts| o.take("data").unwrap_or_default().into_bytes();
    Ok(match o.req("op")?.to_lowercase().as_str() {
        "create" => TxnOp::Create {
            path: o.req("path")?,
            data: data(o),
            sequential: o.flag("sequential"),
            ephemeral_owner: o.num("ephemeral-owner", 0)?,
        },
        "delete" => TxnOp::Delete {
            path: o.req("path")?,
            expected_version: version(o)?,
        },
        "setdata" => TxnOp::SetData {
            path: o.req("path")?,
            data: data(o),
            expected_version: version(o)?,
        },
        "putprocess" => TxnOp::PutProcess {
            sender: o.take("sender").unwrap_or_default(),
            receiver: o.take("receiver").unwrap_or_default(),
            timestamp: o.take("timestamp").unwrap_or_default(),
            clients: o.take("clients").unwrap_or_default(),
        },
        "putevent" => TxnOp::PutEvent {
            sender: o.take("sender").unwrap_or_default(),
            receiver: o.take("receiver").unwrap_or_default(),
            timestamp: o.take("timestamp").unwrap_or_default(),
            clients: o.take("clients").unwrap_or_default(),
            results: o.take("data").unwrap_or_default().into_bytes(),
            retain: o
                .take("retain")
                .map_or(Ok(100_000), |r| r.parse())
                .map_err(|_| "--retain needs a number".to_string())?,
        },
        other => {
            return Err(format!(
                "--op {other:?}: create, delete, setdata, putprocess or putevent"
            ))
        }
    })
}

/// One readable line for an op (the op's `Display`).
fn op_line(op: &TxnOp) -> String {
    op.to_string()
}
