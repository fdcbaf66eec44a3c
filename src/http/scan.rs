//! Single passes over JSON that read what the layer needs without building anything: the
//! top-level `model` of a request body, the token counts of a response's `usage` object.
//! Each answers only for JSON it has checked to be valid and laid out plainly, and then
//! answers what serde_json would; for anything else (invalid JSON, escapes in a key or in
//! the model, a repeated member, nesting deeper than it tracks) it answers `None` and the
//! caller parses with serde_json, which gives the error or the unusual value.

/// Nesting deeper than this (arrays and objects inside a top-level value) is left to serde.
const MAX_DEPTH: u32 = 64;

/// The bytes of the top-level `model` string of `body` (valid UTF-8, no escapes), when
/// `body` is a valid JSON object with exactly one such member.
pub(crate) fn model(body: &[u8]) -> Option<&[u8]> {
    let mut p = Scanner { b: body, i: 0 };
    p.ws();
    p.expect(b'{')?;
    p.ws();
    let mut model = None;
    if p.peek()? == b'}' {
        p.i += 1;
    } else {
        loop {
            let key = p.plain_key()?;
            if key == b"model" {
                if model.is_some() {
                    return None; // serde refuses a duplicate field
                }
                p.expect(b'"')?;
                let m = p.plain_string()?;
                std::str::from_utf8(m).ok()?;
                model = Some(m);
            } else {
                p.value()?;
            }
            if !p.more_members()? {
                break;
            }
        }
    }
    p.ws();
    (p.i == body.len()).then_some(())?;
    model
}

/// Token counts of a `usage` object: chat completions' `prompt_tokens` /
/// `completion_tokens` or the Responses API's `input_tokens` / `output_tokens`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tokens {
    pub(crate) input: Option<u64>,
    pub(crate) output: Option<u64>,
}

/// The token counts of the `usage` object that starts `json` (after whitespace), and how
/// many bytes the object takes. `None` for anything else, and for an object with a `cost`
/// (serde_json reads that number), a count given twice (in either spelling) or a count that
/// is not a `u64` or `null`.
pub(crate) fn usage_tokens(json: &[u8]) -> Option<(Tokens, usize)> {
    let mut p = Scanner { b: json, i: 0 };
    let mut tokens = Tokens::default();
    let (mut seen_input, mut seen_output) = (false, false);
    p.ws();
    p.expect(b'{')?;
    p.ws();
    if p.peek()? == b'}' {
        p.i += 1;
        return Some((tokens, p.i));
    }
    loop {
        let key = p.plain_key()?;
        let counted = match key {
            b"prompt_tokens" | b"input_tokens" => Some((&mut tokens.input, &mut seen_input)),
            b"completion_tokens" | b"output_tokens" => Some((&mut tokens.output, &mut seen_output)),
            b"cost" => return None,
            _ => None,
        };
        match counted {
            Some((slot, seen)) => {
                if std::mem::replace(seen, true) {
                    return None;
                }
                *slot = p.count()?;
            }
            None => p.value()?,
        }
        if !p.more_members()? {
            return Some((tokens, p.i));
        }
    }
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    /// `"key" :` of a member, with the whitespace around: the key's bytes when it is plain
    /// ASCII without escapes (serde_json unescapes and UTF-8-checks keys; others are its).
    fn plain_key(&mut self) -> Option<&'a [u8]> {
        self.ws();
        self.expect(b'"')?;
        let key = self.plain_string()?;
        if !key.is_ascii() {
            return None;
        }
        self.ws();
        self.expect(b':')?;
        self.ws();
        Some(key)
    }

    /// After a member's value: `,` (`true`: another member follows) or `}` (`false`).
    fn more_members(&mut self) -> Option<bool> {
        self.ws();
        match self.next()? {
            b',' => Some(true),
            b'}' => Some(false),
            _ => None,
        }
    }

    /// JSON whitespace, as serde_json reads it.
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// The rest of a string after its opening quote, when it has no escapes: its bytes.
    fn plain_string(&mut self) -> Option<&'a [u8]> {
        let start = self.i;
        self.skip_plain();
        match self.next()? {
            b'"' => Some(&self.b[start..self.i - 1]),
            _ => None,
        }
    }

    /// The rest of any string after its opening quote, checked as serde_json checks a
    /// string it skips: no control characters, only JSON's escapes.
    fn string(&mut self) -> Option<()> {
        loop {
            self.skip_plain();
            match self.next()? {
                b'"' => return Some(()),
                b'\\' => match self.next()? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                    b'u' => {
                        let hex = self.b.get(self.i..self.i + 4)?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return None;
                        }
                        self.i += 4;
                    }
                    _ => return None,
                },
                _ => return None, // a control character
            }
        }
    }

    /// Skips bytes that are neither `"`, `\` nor a control character, eight at a time.
    fn skip_plain(&mut self) {
        const ONES: u64 = u64::from_le_bytes([0x01; 8]);
        const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
        const QUOTE: u64 = u64::from_le_bytes([b'"'; 8]);
        const SLASH: u64 = u64::from_le_bytes([b'\\'; 8]);
        const CTRL: u64 = u64::from_le_bytes([0x20; 8]);
        while let Some(chunk) = self.b.get(self.i..self.i + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            // Little-endian: the chunk's first byte is the lowest.
            let x = u64::from_le_bytes(word);
            let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
            // A byte below 0x20 (the high bit test excludes bytes >= 0x80 from it), a quote
            // or a backslash. The borrows of these tests can mark bytes above a special one,
            // never below it: the lowest mark is the first special byte.
            let special = (x.wrapping_sub(CTRL) & !x & HIGH) | zero(x ^ QUOTE) | zero(x ^ SLASH);
            if special != 0 {
                self.i += (special.trailing_zeros() / 8) as usize;
                return;
            }
            self.i += 8;
        }
        while let Some(c) = self.peek() {
            if c == b'"' || c == b'\\' || c < 0x20 {
                return;
            }
            self.i += 1;
        }
    }

    /// One JSON value, of any nesting up to [`MAX_DEPTH`].
    fn value(&mut self) -> Option<()> {
        // Bit `d` of `objects`: whether the container at depth `d + 1` is an object.
        let mut objects: u64 = 0;
        let mut depth: u32 = 0;
        loop {
            // A value starts here.
            self.ws();
            let mut opened = false;
            match self.next()? {
                b'"' => self.string()?,
                open @ (b'{' | b'[') => {
                    let object = open == b'{';
                    self.ws();
                    if self.peek()? == if object { b'}' } else { b']' } {
                        self.i += 1;
                    } else {
                        depth += 1;
                        if depth > MAX_DEPTH {
                            return None;
                        }
                        let bit = 1 << (depth - 1);
                        if object {
                            objects |= bit;
                            self.member_key()?;
                        } else {
                            objects &= !bit;
                        }
                        opened = true;
                    }
                }
                b't' => self.literal(b"rue")?,
                b'f' => self.literal(b"alse")?,
                b'n' => self.literal(b"ull")?,
                c @ (b'-' | b'0'..=b'9') => self.number(c)?,
                _ => return None,
            }
            if opened {
                continue;
            }
            // A value ended: a separator, or containers closing.
            loop {
                if depth == 0 {
                    return Some(());
                }
                let in_object = objects & (1 << (depth - 1)) != 0;
                self.ws();
                match self.next()? {
                    b',' => {
                        if in_object {
                            self.ws();
                            self.member_key()?;
                        }
                        break;
                    }
                    b'}' if in_object => depth -= 1,
                    b']' if !in_object => depth -= 1,
                    _ => return None,
                }
            }
        }
    }

    /// `"key" :` of a member inside a value.
    fn member_key(&mut self) -> Option<()> {
        self.expect(b'"')?;
        self.string()?;
        self.ws();
        self.expect(b':')
    }

    fn literal(&mut self, rest: &[u8]) -> Option<()> {
        let end = self.i + rest.len();
        (self.b.get(self.i..end)? == rest).then_some(())?;
        self.i = end;
        Some(())
    }

    /// A number after its first byte `first`: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    /// What follows is checked by the caller (a digit after a leading zero is refused there).
    fn number(&mut self, first: u8) -> Option<()> {
        let first = if first == b'-' { self.next()? } else { first };
        match first {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            self.some_digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            self.some_digits()?;
        }
        Some(())
    }

    /// A `u64` written as plain digits, or `null`; `None` for anything else (negative,
    /// fractional or out-of-range numbers are serde's to refuse).
    fn count(&mut self) -> Option<Option<u64>> {
        if self.peek()? == b'n' {
            self.i += 1;
            self.literal(b"ull")?;
            return Some(None);
        }
        let start = self.i;
        self.digits();
        let digits = &self.b[start..self.i];
        if digits.is_empty() || (digits.len() > 1 && digits[0] == b'0') {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = self.peek() {
            return None;
        }
        let mut n: u64 = 0;
        for &d in digits {
            n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        }
        Some(Some(n))
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
    }

    fn some_digits(&mut self) -> Option<()> {
        let start = self.i;
        self.digits();
        (self.i > start).then_some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    #[derive(serde::Deserialize)]
    struct ModelOnly<'a> {
        #[serde(borrow, default)]
        model: Option<Cow<'a, str>>,
    }

    /// What serde_json makes of the body: `Some(model)` for a valid object with a string model.
    fn serde_model(body: &[u8]) -> Option<String> {
        serde_json::from_slice::<ModelOnly<'_>>(body)
            .ok()?
            .model
            .map(Cow::into_owned)
    }

    fn scan(body: &str) -> Option<&str> {
        model(body.as_bytes()).map(|m| std::str::from_utf8(m).unwrap())
    }

    #[test]
    fn skip_plain_stops_at_the_first_special_byte_of_a_word() {
        // Every position of a quote, a backslash or a control byte in strings longer and
        // shorter than a word, after plain bytes of both halves of the byte range.
        for len in 0..40 {
            for at in 0..len {
                for special in [b'"', b'\\', 0x00, 0x1f] {
                    for plain in [b'a', 0x20, 0x7f, 0x80, 0xff] {
                        let mut b = vec![plain; len];
                        b[at] = special;
                        // A special byte after the first one must not move the stop.
                        if at + 1 < len {
                            b[len - 1] = b'"';
                        }
                        let mut p = Scanner { b: &b, i: 0 };
                        p.skip_plain();
                        assert_eq!(p.i, at, "len {len}, at {at}, {special:#x} after {plain:#x}");
                    }
                }
            }
            let plain = vec![b'a'; len];
            let mut p = Scanner { b: &plain, i: 0 };
            p.skip_plain();
            assert_eq!(p.i, len);
        }
    }

    #[test]
    fn finds_the_model_where_serde_does() {
        let cases = [
            r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#,
            r#" { "messages" : [ { "content" : "a \"model\": \"x\" \\ \u00e9 é" } ] , "model" : "m" } "#,
            r#"{"a":{"model":"inner"},"model":"outer","b":[1,-2.5e3,0,true,false,null,{},[]]}"#,
            r#"{"model":"é-model","n":-0.0E+1,"s":"\/\b\f\n\r\t\u00AF"}"#,
            "{\"model\":\"m\"}\n",
            r#"{"deep":[[[[{"x":[{"y":{}}]}]]]],"model":"m"}"#,
        ];
        for body in cases {
            assert_eq!(
                scan(body),
                serde_model(body.as_bytes()).as_deref(),
                "{body}"
            );
            assert!(scan(body).is_some(), "{body}");
        }
    }

    #[test]
    fn leaves_to_serde_what_it_is_not_sure_of() {
        // Each is either invalid JSON, has no usable plain model, or needs unescaping.
        let cases = [
            "",
            "not json",
            r#"{"model":"m""#,
            r#"{"model":"m",}"#,
            r#"{"model":"m"} x"#,
            r#"{"model":"m","n":01}"#,
            r#"{"model":"m","n":1.}"#,
            r#"{"model":"m","n":-}"#,
            r#"{"model":"m","n":tru}"#,
            r#"{"model":"m","s":"\x"}"#,
            r#"{"model":"m","s":"\u12G4"}"#,
            "{\"model\":\"m\",\"s\":\"a\tb\"}",
            r#"{"model":"m","a":[1,2}"#,
            r#"{"model":"m","a":{"k" 1}}"#,
            r#"{"model":"m","a":{"k":1,}}"#,
            r#"{"model":"a\"b"}"#,
            r#"{"mod\u0065l":"m"}"#,
            r#"{"model":"m","model":"n"}"#,
            r#"{"model":null}"#,
            r#"{"model":5}"#,
            r#"["m"]"#,
            r#"{"other":"x"}"#,
            r#"{}"#,
        ];
        for body in cases {
            assert_eq!(scan(body), None, "{body}");
        }
        let deep = format!(
            r#"{{"a":{}1{},"model":"m"}}"#,
            "[".repeat(65),
            "]".repeat(65)
        );
        assert_eq!(scan(&deep), None);
        let ok = format!(
            r#"{{"a":{}1{},"model":"m"}}"#,
            "[".repeat(64),
            "]".repeat(64)
        );
        assert_eq!(scan(&ok), Some("m"));
        // Invalid UTF-8 in the model.
        assert_eq!(model(b"{\"model\":\"\xff\"}"), None);
    }

    #[derive(serde::Deserialize, Debug)]
    struct UsageJson {
        #[serde(default, alias = "input_tokens")]
        prompt_tokens: Option<u64>,
        #[serde(default, alias = "output_tokens")]
        completion_tokens: Option<u64>,
    }

    /// serde_json's reading of a usage object, and the bytes it took.
    fn serde_usage(json: &[u8]) -> Option<(Tokens, usize)> {
        let mut it = serde_json::Deserializer::from_slice(json).into_iter::<UsageJson>();
        let u = it.next()?.ok()?;
        Some((
            Tokens {
                input: u.prompt_tokens,
                output: u.completion_tokens,
            },
            it.byte_offset(),
        ))
    }

    #[test]
    fn usage_counts_agree_with_serde() {
        let plain = [
            r#"{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}"#,
            r#" { "input_tokens" : 5 , "output_tokens" : 7 , "details" : {"cached":[0,1.5]} } "#,
            r#"{"prompt_tokens":null,"completion_tokens":18446744073709551615}"#,
            r#"{"x":"\u00e9"}"#,
            r#"{}"#,
        ];
        for json in plain {
            let fast = usage_tokens(json.as_bytes());
            assert!(fast.is_some(), "{json}");
            let (t, used) = fast.unwrap();
            let (st, sused) = serde_usage(json.as_bytes()).unwrap();
            assert_eq!(t, st, "{json}");
            assert_eq!(json[used..].trim(), json[sused..].trim(), "{json}");
        }
        let unsure = [
            r#"{"prompt_tokens":1,"input_tokens":2}"#,
            r#"{"prompt_tokens":1,"prompt_tokens":2}"#,
            r#"{"prompt_tokens":-1}"#,
            r#"{"prompt_tokens":1.0}"#,
            r#"{"prompt_tokens":1e2}"#,
            r#"{"prompt_tokens":01}"#,
            r#"{"prompt_tokens":18446744073709551616}"#,
            r#"{"prompt_tokens":"1"}"#,
            r#"{"cost":0.5,"prompt_tokens":1}"#,
            r#"{"prompt_tokens":1,}"#,
            r#"{"prompt_\u0074okens":1}"#,
            r#"null"#,
            r#"[1,2]"#,
        ];
        for json in unsure {
            assert_eq!(usage_tokens(json.as_bytes()), None, "{json}");
        }
    }

    #[test]
    fn never_disagrees_with_serde_on_mutated_bodies() {
        // Every single-byte deletion and replacement of a typical body: where the scan
        // answers, serde answers the same.
        let base = br#"{"model":"gpt-4o","messages":[{"role":"user","content":"h\"i"}],"n":-1.5e2,"t":true}"#;
        let bytes = [
            b'"', b'\\', b',', b':', b'{', b'}', b'[', b']', b'0', b'e', b' ', 0x01, b'x',
        ];
        let mut checked = 0;
        for i in 0..base.len() {
            let mut cut = base.to_vec();
            cut.remove(i);
            let mut variants = vec![cut];
            for &c in &bytes {
                let mut v = base.to_vec();
                v[i] = c;
                variants.push(v);
            }
            for v in variants {
                if let Some(m) = model(&v) {
                    assert_eq!(
                        Some(std::str::from_utf8(m).unwrap().to_owned()),
                        serde_model(&v),
                        "{}",
                        String::from_utf8_lossy(&v)
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 100, "{checked}");
    }
}
