//! A minimal JSON object writer for generated events: keys in the order written, strings
//! escaped per RFC 8259, straight into a byte buffer. Building `serde_json::Value` trees per
//! event would cost more than the engine spends reading them; 10^8 events must stay cheap.

use std::io::Write;

/// Writes one JSON object into `out`. Call [`Obj::end`] to close it.
pub struct Obj<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Obj<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Obj<'a> {
        out.push(b'{');
        Obj { out, first: true }
    }

    fn key(&mut self, k: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        string(self.out, k);
        self.out.push(b':');
    }

    pub fn str(&mut self, k: &str, v: &str) -> &mut Self {
        self.key(k);
        string(self.out, v);
        self
    }

    pub fn int(&mut self, k: &str, v: i64) -> &mut Self {
        self.key(k);
        // Writing into a Vec cannot fail.
        let _ = write!(self.out, "{v}");
        self
    }

    pub fn bool(&mut self, k: &str, v: bool) -> &mut Self {
        self.key(k);
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        self
    }

    pub fn null(&mut self, k: &str) -> &mut Self {
        self.key(k);
        self.out.extend_from_slice(b"null");
        self
    }

    /// A nested object filled by `f`.
    pub fn obj(&mut self, k: &str, f: impl FnOnce(&mut Obj<'_>)) -> &mut Self {
        self.key(k);
        let mut inner = Obj::new(self.out);
        f(&mut inner);
        inner.end();
        self
    }

    /// An array of strings.
    pub fn strs(&mut self, k: &str, items: &[&str]) -> &mut Self {
        self.key(k);
        self.out.push(b'[');
        for (i, s) in items.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            string(self.out, s);
        }
        self.out.push(b']');
        self
    }

    /// An array of objects, each filled by `f(index)`.
    pub fn objs(&mut self, k: &str, n: usize, mut f: impl FnMut(usize, &mut Obj<'_>)) -> &mut Self {
        self.key(k);
        self.out.push(b'[');
        for i in 0..n {
            if i > 0 {
                self.out.push(b',');
            }
            let mut inner = Obj::new(self.out);
            f(i, &mut inner);
            inner.end();
        }
        self.out.push(b']');
        self
    }

    pub fn end(self) {
        self.out.push(b'}');
    }
}

/// Appends `s` as a JSON string.
pub fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_valid_json_with_escapes() {
        let mut out = Vec::new();
        let mut o = Obj::new(&mut out);
        o.str("path", "C:\\Windows\\\"x\"\n\u{1}")
            .int("n", -42)
            .bool("b", true)
            .null("z")
            .obj("inner", |i| {
                i.str("k", "v");
            })
            .strs("list", &["a", "b"])
            .objs("items", 2, |n, i| {
                i.int("i", n as i64);
            });
        o.end();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["path"], "C:\\Windows\\\"x\"\n\u{1}");
        assert_eq!(v["n"], -42);
        assert_eq!(v["inner"]["k"], "v");
        assert_eq!(v["items"][1]["i"], 1);
        assert_eq!(v["list"][1], "b");
        assert!(v["z"].is_null());
    }
}
