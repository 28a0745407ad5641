//! `hexdump -C` text, for debugging the wire (used by `zw-wire` and the spec's tests).

/// Renders `bytes` exactly as `hexdump -C` does (repeated lines squeezed to `*`).
pub fn hexdump_c(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut prev: Option<&[u8]> = None;
    let mut squeezing = false;
    for (i, chunk) in bytes.chunks(16).enumerate() {
        if chunk.len() == 16 && prev == Some(chunk) {
            if !squeezing {
                out.push_str("*\n");
                squeezing = true;
            }
            continue;
        }
        squeezing = false;
        prev = Some(chunk);
        out.push_str(&format!("{:08x}  ", i * 16));
        for j in 0..16 {
            match chunk.get(j) {
                Some(b) => out.push_str(&format!("{b:02x} ")),
                None => out.push_str("   "),
            }
            if j == 7 {
                out.push(' ');
            }
        }
        let ascii: String = chunk
            .iter()
            .map(|&b| {
                if (0x20..0x7f).contains(&b) {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        out.push_str(&format!(" |{ascii}|\n"));
    }
    if !bytes.is_empty() {
        out.push_str(&format!("{:08x}\n", bytes.len()));
    }
    out
}
