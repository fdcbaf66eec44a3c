//! Secrets in org configs: which values are secrets, how they are masked for display, and
//! how a masked value sent back in a patch keeps the secret it stands for.
//!
//! The rule (the README's "Secrets in the config" describes it for users):
//!
//! * A field **name** is split into words at every character that is not a letter or digit
//!   and at camelCase boundaries (`accessToken` -> `access token`, `APIKey` -> `api key`),
//!   lower-cased; trailing digits of a word are dropped (`key2` -> `key`); the words are
//!   also taken without camelCase splitting, and either way may make the name secret. It is
//!   secret when the words joined (`xapikey`) contain one of [`STEMS`], when any word is one
//!   of [`ANY_WORD`] (`token` only when the next word is not one of [`TOKEN_SETTINGS`]), or
//!   when the last word is one of [`LAST_WORD`].
//! * Under a secret name, every string and number is secret, however deep inside objects
//!   and arrays; `true`, `false` and `null` are not (they hold no credential).
//! * In every other string, credentials written inline are secret ([`string_credentials`]):
//!   the password of `scheme://user:PASSWORD@host` (the user stays readable) or the whole
//!   userinfo of `scheme://TOKEN@host`; the value of a secret-named parameter (`?key=VALUE`,
//!   `;Password=VALUE`); the token of `Bearer TOKEN`.
//!
//! A secret string shows as `abc...wxyz` (first 3 and last 4 characters) when it has at
//! least 12 characters, else `****`; a secret number as the string `****`; an inline
//! credential as `****` in place (`https://user:****@host`, `?key=****`).

use std::cell::OnceCell;
use std::collections::HashMap;
use std::ops::Range;

use serde_json::Value;

use crate::error::Error;

/// The mask of a short secret, a secret number and an inline credential.
pub(crate) const MASK: &str = "****";

/// What marks an encrypted value in the store file; never accepted from a caller.
pub(crate) const SEALED_PREFIX: &str = "enc:v1:";

/// A name whose words, joined, contain one of these is secret.
pub(crate) const STEMS: &[&str] = &[
    "secret",
    "password",
    "passwd",
    "passphrase",
    "passcode",
    "pincode",
    "credential",
    "apikey",
    "apitoken",
    "accesskey",
    "privatekey",
    "accesstoken",
    "refreshtoken",
    "sessiontoken",
    "authtoken",
    "authorization",
    "cookie",
];

/// A name with one of these words anywhere is secret (`auth`, `auth_header`, `basic-auth`,
/// `tokenValue`), except `token` directly followed by one of [`TOKEN_SETTINGS`].
pub(crate) const ANY_WORD: &[&str] = &["auth", "pwd", "bearer", "token"];

/// After `token`, these words name a count or a setting, not a credential (`token_limit`,
/// `token_url`). `tokens` (plural) is not a secret word at all: `max_tokens` is a count.
pub(crate) const TOKEN_SETTINGS: &[&str] = &[
    "limit", "limits", "count", "budget", "quota", "rate", "usage", "cost", "price", "window",
    "size", "type", "ttl", "expiry", "lifetime", "url", "endpoint",
];

/// A name whose last word is one of these is secret (`key`, `signing_key`, `x-goog-api-key`,
/// `keys`, `pin`). `key` elsewhere in a name is not (`per_key_rpm`, `key_prefix`).
pub(crate) const LAST_WORD: &[&str] = &[
    "key",
    "keys",
    "pin",
    "pass",
    "jwt",
    "otp",
    "sig",
    "signature",
];

/// The words of a field name, lower-cased, trailing digits dropped, empty words skipped;
/// split at camelCase boundaries too when `camel`.
fn words(name: &str, camel: bool) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = name.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            out.push(std::mem::take(&mut cur));
            continue;
        }
        let prev = i.checked_sub(1).and_then(|p| chars.get(p)).copied();
        let next = chars.get(i + 1).copied();
        let boundary = camel
            && c.is_uppercase()
            && prev.is_some_and(|p| {
                p.is_lowercase()
                    || p.is_ascii_digit()
                    || (p.is_uppercase() && next.is_some_and(char::is_lowercase))
            });
        if boundary {
            out.push(std::mem::take(&mut cur));
        }
        cur.extend(c.to_lowercase());
    }
    out.push(cur);
    out.into_iter()
        .map(|w| w.trim_end_matches(|c: char| c.is_ascii_digit()).to_owned())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Whether a JSON field name holds a secret (see the module documentation for the rule).
/// The words are taken with and without camelCase splitting (`API_kEy` is secret either way).
pub(crate) fn is_secret_field(name: &str) -> bool {
    secret_words(&words(name, true)) || secret_words(&words(name, false))
}

fn secret_words(words: &[String]) -> bool {
    let joined: String = words.concat();
    STEMS.iter().any(|s| joined.contains(s))
        || words.iter().enumerate().any(|(i, w)| {
            ANY_WORD.contains(&w.as_str())
                && !(w == "token"
                    && words
                        .get(i + 1)
                        .is_some_and(|n| TOKEN_SETTINGS.contains(&n.as_str())))
        })
        || words
            .last()
            .is_some_and(|w| LAST_WORD.contains(&w.as_str()))
}

/// `sk-proj-abcdef123456` -> `sk-...3456`; short values are hidden entirely.
///
/// A secret shorter than 12 characters shows nothing of itself.
pub(crate) fn mask_secret(s: &str) -> String {
    // Masking is idempotent: an already masked value stays as it is.
    if looks_masked(s) {
        return s.to_owned();
    }
    let n = s.chars().count();
    if n < 12 {
        return MASK.to_owned();
    }
    let head: String = s.chars().take(3).collect();
    let tail: String = s.chars().skip(n - 4).collect();
    format!("{head}...{tail}")
}

/// Whether `s` has the shape of a mask (`****` or `abc...wxyz`).
pub(crate) fn looks_masked(s: &str) -> bool {
    s == MASK || (s.chars().count() == 10 && s.chars().skip(3).take(3).eq("...".chars()))
}

/// Masks every secret anywhere in `v`, in place: secret-named values and inline credentials.
pub(crate) fn mask_secrets(v: &mut Value) {
    mask_in_place(v, false);
}

/// What the store prints for `v` at a place that is (`secret`) or is not under a secret name.
pub(crate) fn mask_at(v: &Value, secret: bool) -> Value {
    #[cfg(test)]
    tests::MASKINGS.with(|n| n.set(n.get() + 1));
    let mut v = v.clone();
    mask_in_place(&mut v, secret);
    v
}

fn mask_in_place(v: &mut Value, secret: bool) {
    match v {
        Value::Object(o) => {
            for (k, val) in o.iter_mut() {
                mask_in_place(val, secret || is_secret_field(k));
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|x| mask_in_place(x, secret)),
        Value::String(s) if secret => *s = mask_secret(s),
        Value::String(s) => {
            if let Some(m) = mask_in_string(s) {
                *s = m;
            }
        }
        Value::Number(_) if secret => *v = Value::String(MASK.into()),
        Value::Number(_) | Value::Bool(_) | Value::Null => {}
    }
}

/// The byte ranges of the credentials inside a string that is not under a secret name, in
/// order and without overlaps: URL userinfo ([`url_credentials`]), secret-named parameters
/// (`?key=VALUE`, `;Password=VALUE`, see [`param_credentials`]) and `Bearer TOKEN`.
pub(crate) fn string_credentials(s: &str) -> Vec<Range<usize>> {
    let mut all = url_credentials(s);
    all.extend(param_credentials(s));
    all.extend(bearer_credentials(s));
    all.sort_by_key(|r| (r.start, std::cmp::Reverse(r.end)));
    let mut out: Vec<Range<usize>> = Vec::with_capacity(all.len());
    for r in all {
        if out.last().is_none_or(|last| r.start >= last.end) {
            out.push(r);
        }
    }
    out
}

/// `NAME=VALUE` where NAME (letters, digits, `_`, `.`, `-`) starts the string or follows
/// `?`, `&`, `;` or a blank, and is a secret name (`?key=`, `&api_key=`, `;Password=`,
/// `AccountKey=`, `sig=`): the VALUE, up to the next `&`, `;`, blank or the end.
fn param_credentials(s: &str) -> Vec<Range<usize>> {
    let b = s.as_bytes();
    let is_name = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-');
    let is_end = |c: u8| matches!(c, b'&' | b';') || c.is_ascii_whitespace();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let starts = i == 0
            || b.get(i - 1)
                .is_some_and(|&c| matches!(c, b'?' | b'&' | b';') || c.is_ascii_whitespace());
        if !starts || !b.get(i).copied().is_some_and(is_name) {
            i += 1;
            continue;
        }
        let mut j = i;
        while b.get(j).copied().is_some_and(is_name) {
            j += 1;
        }
        if b.get(j) != Some(&b'=') {
            i = j.max(i + 1);
            continue;
        }
        let mut k = j + 1;
        while b.get(k).copied().is_some_and(|c| !is_end(c)) {
            k += 1;
        }
        if k > j + 1 && s.get(i..j).is_some_and(is_secret_field) {
            out.push(j + 1..k);
        }
        i = k.max(i + 1);
    }
    out
}

/// `Bearer TOKEN` (any case, `Bearer` not preceded by a letter or digit): the TOKEN, made of
/// letters, digits and `-._~+/=:*`.
fn bearer_credentials(s: &str) -> Vec<Range<usize>> {
    let lower = s.to_ascii_lowercase();
    let b = s.as_bytes();
    let is_tok = |c: u8| c.is_ascii_alphanumeric() || b"-._~+/=:*".contains(&c);
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(off) = lower.get(from..).and_then(|t| t.find("bearer")) {
        let at = from + off;
        from = at + 6;
        if at > 0 && b.get(at - 1).is_some_and(u8::is_ascii_alphanumeric) {
            continue;
        }
        let mut start = from;
        while b.get(start).is_some_and(|&c| c == b' ' || c == b'\t') {
            start += 1;
        }
        if start == from {
            continue;
        }
        let mut end = start;
        while b.get(end).copied().is_some_and(is_tok) {
            end += 1;
        }
        if end > start {
            out.push(start..end);
            from = end;
        }
    }
    out
}

/// The byte ranges of the URL credentials in `s`, in order: for each `scheme://` whose
/// authority (up to the first `/`, `?`, `#` or blank) has a userinfo (up to its last `@`),
/// the password after the userinfo's first `:`, or the whole userinfo when it has no `:`.
/// Empty credentials (`https://user:@host`) are not listed.
fn url_credentials(s: &str) -> Vec<Range<usize>> {
    let b = s.as_bytes();
    let is_scheme = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.');
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(off) = s.get(from..).and_then(|t| t.find("://")) {
        let sep = from + off;
        let start = sep + 3;
        from = start;
        let mut scheme = sep;
        while scheme > 0 && b.get(scheme - 1).copied().is_some_and(is_scheme) {
            scheme -= 1;
        }
        if !b[scheme..sep].iter().any(u8::is_ascii_alphabetic) {
            continue;
        }
        let rest = s.get(start..).unwrap_or("");
        let end = start
            + rest
                .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace())
                .unwrap_or(rest.len());
        let Some(at) = s.get(start..end).and_then(|a| a.rfind('@')) else {
            continue;
        };
        let at = start + at;
        let userinfo = s.get(start..at).unwrap_or("");
        let cred = match userinfo.find(':') {
            Some(colon) => start + colon + 1..at,
            None => start..at,
        };
        if !cred.is_empty() {
            out.push(cred);
        }
        from = end;
    }
    out
}

/// `s` with every credential ([`string_credentials`]) replaced by `****`, or `None` when it
/// has none.
pub(crate) fn mask_in_string(s: &str) -> Option<String> {
    let ranges = string_credentials(s);
    if ranges.is_empty() {
        return None;
    }
    let mut out = s.to_owned();
    for r in ranges.into_iter().rev() {
        out.replace_range(r, MASK);
    }
    Some(out)
}

/// The path of field `key` under `path`, for messages (`config.providers.openai.api_key`).
fn child(path: &str, key: &str) -> String {
    format!("{path}.{key}")
}

/// Refuses a caller's value holding the store's encryption marker anywhere: it would be
/// read back as an encrypted value.
pub(crate) fn reject_sealed_text(v: &Value) -> Result<(), Error> {
    fn walk(v: &Value, path: &str) -> Result<(), Error> {
        match v {
            Value::String(s) if s.contains(SEALED_PREFIX) => Err(Error::invalid(
                path.to_owned(),
                format!(
                    "contains `{SEALED_PREFIX}`, which marks an encrypted value in the store file; \
                     give the value in clear text"
                ),
            )),
            Value::Object(o) => o.iter().try_for_each(|(k, x)| walk(x, &child(path, k))),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .try_for_each(|(i, x)| walk(x, &format!("{path}[{i}]"))),
            _ => Ok(()),
        }
    }
    walk(v, "config")
}

/// In a patch, replaces every mask that stands for a current secret by that secret, so
/// that whatever a masked read printed can be sent back unchanged without destroying a
/// secret. At each place of an object (same path in `current`):
///
/// * under a secret name, a string equal to the mask of the current value keeps the
///   current value (a string, or a number masked as `****`); any other mask-shaped string
///   (`****`, `abc...wxyz`) is refused, since storing it would replace the secret by its
///   mask; any other value is a new secret;
/// * elsewhere, an inline credential written `****` keeps the one at the same position in
///   the current string, whatever else of the string changed (host, path, user); with no
///   such current credential it is refused.
///
/// An element of an array is matched by how it prints, not by its index (elements may
/// have been dropped, inserted or reordered): a masked string element keeps the current
/// element of that array that prints exactly like it. If several current elements with
/// different values print alike, they keep their order when all of them are sent back, or
/// the value at the same index when the array kept its length; otherwise it is ambiguous
/// and refused, naming the element. A masked element that prints like no current element
/// (its host or user changed) keeps the credential of the element it replaced in place
/// only when the array kept its length and that element was not sent back elsewhere;
/// otherwise it is refused.
pub(crate) fn restore_masked(patch: &mut Value, current: &Value) -> Result<(), Error> {
    restore(patch, Some(current), false, "config")
}

/// The current elements of an array, found by the mask the store prints for them (built
/// once per array, on first use, so a long array of masks costs linear time).
struct Siblings<'a> {
    items: &'a [Value],
    secret: bool,
    /// Mask -> the indexes of the elements that print as it, in order.
    by_mask: OnceCell<HashMap<String, Vec<usize>>>,
}

impl<'a> Siblings<'a> {
    fn new(items: &'a [Value], secret: bool) -> Self {
        Self {
            items,
            secret,
            by_mask: OnceCell::new(),
        }
    }

    /// The string or number elements whose mask is `sent`, in order.
    fn printing_as(&self, sent: &str) -> &[usize] {
        let map = self.by_mask.get_or_init(|| {
            let mut map: HashMap<String, Vec<usize>> = HashMap::new();
            for (i, c) in self.items.iter().enumerate() {
                if !matches!(c, Value::String(_) | Value::Number(_)) {
                    continue;
                }
                if let Value::String(m) = mask_at(c, self.secret) {
                    map.entry(m).or_default().push(i);
                }
            }
            map
        });
        map.get(sent).map_or(&[], Vec::as_slice)
    }
}

/// Whether `s`, sent back at a place that is secret or not, holds a mask to restore.
fn holds_mask(s: &str, secret: bool) -> bool {
    if secret {
        looks_masked(s)
    } else {
        string_credentials(s)
            .into_iter()
            .any(|r| s.get(r) == Some(MASK))
    }
}

fn restore(p: &mut Value, cur: Option<&Value>, secret: bool, path: &str) -> Result<(), Error> {
    match p {
        Value::Object(o) => {
            let cur = cur.and_then(Value::as_object);
            for (k, v) in o.iter_mut() {
                let c = cur.and_then(|c| c.get(k));
                restore(v, c, secret || is_secret_field(k), &child(path, k))?;
            }
            Ok(())
        }
        Value::Array(items) => {
            let cur: &[Value] = cur.and_then(Value::as_array).map_or(&[], Vec::as_slice);
            restore_elements(items, cur, secret, path)
        }
        Value::String(s) if secret => {
            if !looks_masked(s) {
                return Ok(());
            }
            let sent = Value::String(s.clone());
            match cur.filter(|c| mask_at(c, true) == sent) {
                Some(c) => {
                    *p = c.clone();
                    Ok(())
                }
                None => Err(stale_mask(path)),
            }
        }
        Value::String(s) => {
            let c = cur.and_then(Value::as_str);
            match restore_in_string(s, c) {
                Ok(Some(fixed)) => {
                    *s = fixed;
                    Ok(())
                }
                Ok(None) => Ok(()),
                Err(()) => Err(no_credential_here(path)),
            }
        }
        Value::Number(_) | Value::Bool(_) | Value::Null => Ok(()),
    }
}

/// [`restore`] for the elements of an array: masked strings by how they print (see
/// [`restore_masked`]), other elements (objects, arrays) at the same index.
fn restore_elements(
    items: &mut [Value],
    cur: &[Value],
    secret: bool,
    path: &str,
) -> Result<(), Error> {
    let siblings = Siblings::new(cur, secret);
    // How often each masked string is sent, and how many of its kind were used so far.
    let mut sent: HashMap<String, (usize, usize)> = HashMap::new();
    for v in items.iter() {
        if let Value::String(s) = v
            && holds_mask(s, secret)
        {
            sent.entry(s.clone()).or_default().0 += 1;
        }
    }
    let items_len = items.len();
    for (i, v) in items.iter_mut().enumerate() {
        let path = format!("{path}[{i}]");
        let Value::String(s) = v else {
            restore(v, cur.get(i), secret, &path)?;
            continue;
        };
        let Some(&(times_sent, used)) = sent.get(s.as_str()) else {
            continue;
        };
        let alike = siblings.printing_as(s);
        // Same length: elements were edited in place, not dropped or inserted, so the
        // element at this index is this element's current value.
        let in_place = items_len == cur.len();
        let keep = match alike {
            [] if secret => return Err(stale_mask(&path)),
            // Printing like no current element, a string whose host or user changed keeps
            // the credential of the element it replaced in place, if that element was not
            // sent back elsewhere.
            [] => {
                let replaced = cur.get(i).filter(|c| {
                    in_place
                        && mask_at(c, false)
                            .as_str()
                            .is_none_or(|m| !sent.contains_key(m))
                });
                match restore_in_string(s, replaced.and_then(Value::as_str)) {
                    Ok(Some(fixed)) => *s = fixed,
                    Ok(None) => {}
                    Err(()) => return Err(no_credential_here(&path)),
                }
                continue;
            }
            [one] => *one,
            [first, rest @ ..] if rest.iter().all(|j| cur[*j] == cur[*first]) => *first,
            // Every look-alike sent back: they keep their order.
            _ if times_sent == alike.len() => alike[used],
            _ if in_place && alike.contains(&i) => i,
            _ => {
                return Err(Error::invalid(
                    path,
                    format!(
                        "prints like {} current elements of this array that hold different \
                         secrets, and {} of them were sent back, so which to keep is \
                         ambiguous; send the secrets of this array in clear text",
                        alike.len(),
                        times_sent
                    ),
                ));
            }
        };
        if let Some(entry) = sent.get_mut(s.as_str()) {
            entry.1 += 1;
        }
        if let Some(c) = cur.get(keep) {
            *v = c.clone();
        }
    }
    Ok(())
}

/// The refusal of a mask under a secret name that stands for no current secret.
fn stale_mask(path: &str) -> Error {
    Error::invalid(
        path.to_owned(),
        "is a masked value that does not stand for the current secret here (it \
         changed or is absent); send the secret in clear text to set it, or the \
         value the latest masked read printed to keep it",
    )
}

/// The refusal of an inline credential written `****` with no current one to keep.
fn no_credential_here(path: &str) -> Error {
    Error::invalid(
        path.to_owned(),
        format!(
            "has a masked credential (`{MASK}`) but there is no current credential at this \
             place to keep (an array element keeps the credential of the current element \
             that prints exactly like it); give it in clear text"
        ),
    )
}

/// `sent` with each credential written `****` replaced by the credential at the same
/// position in `current`; `Ok(None)` when nothing is masked, `Err` when a masked credential
/// has no current one.
fn restore_in_string(sent: &str, current: Option<&str>) -> Result<Option<String>, ()> {
    let masked: Vec<(usize, Range<usize>)> = string_credentials(sent)
        .into_iter()
        .enumerate()
        .filter(|(_, r)| sent.get(r.clone()) == Some(MASK))
        .collect();
    if masked.is_empty() {
        return Ok(None);
    }
    let current = current.ok_or(())?;
    let creds = string_credentials(current);
    let mut out = sent.to_owned();
    for (i, r) in masked.into_iter().rev() {
        let keep = creds
            .get(i)
            .and_then(|c| current.get(c.clone()))
            .ok_or(())?;
        out.replace_range(r, keep);
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    thread_local! {
        /// Calls of [`mask_at`] on this thread: the unit of work of restoring masks.
        pub(super) static MASKINGS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    /// How many values restoring `patch` against `current` masks.
    fn maskings_to_restore(patch: &mut Value, current: &Value) -> u64 {
        MASKINGS.with(|n| n.set(0));
        restore_masked(patch, current).unwrap();
        MASKINGS.with(|n| n.get())
    }

    #[test]
    fn restoring_an_array_of_moved_masks_masks_each_element_a_bounded_number_of_times() {
        for n in [10usize, 100, 1000, 4000] {
            let keys: Vec<String> = (0..n)
                .map(|i| format!("sk-{i:05}-padpadpad-{i:05}"))
                .collect();
            let current = json!({"providers": {"p": {"api_keys": keys}}});
            let mut masked = current.clone();
            mask_secrets(&mut masked);
            // The first key dropped: every other mask moved one place to the front.
            let moved = &masked["providers"]["p"]["api_keys"].as_array().unwrap()[1..];
            let mut patch = json!({"providers": {"p": {"api_keys": moved}}});
            let work = maskings_to_restore(&mut patch, &current);
            assert_eq!(patch["providers"]["p"]["api_keys"], json!(keys[1..]));
            // The array's index of masks is built once (one masking per current element)
            // and each sent mask is looked up in it: at most 2n. Searching the array for
            // each mask would be n * n.
            assert!(work <= 2 * n as u64, "n = {n}: {work} maskings");
            assert!(
                work >= n as u64,
                "n = {n}: {work} maskings: the count is not counting"
            );
        }
    }

    /// `current`'s `urls` masked, rearranged by `edit`, and restored.
    fn restore_urls(current: &[&str], edit: impl FnOnce(&mut Vec<Value>)) -> Result<Value, Error> {
        let current = json!({"mirrors": {"urls": current}});
        let mut patch = mask_at(&current, false);
        let urls = patch["mirrors"]["urls"].as_array_mut().unwrap();
        edit(urls);
        restore_masked(&mut patch, &current)?;
        Ok(patch["mirrors"]["urls"].clone())
    }

    const URLS: [&str; 3] = [
        "https://ann:pw-one@a.example/x",
        "https://bob:pw-two@b.example/x",
        "https://cy:pw-three@c.example/x",
    ];

    #[test]
    fn masked_url_credentials_in_an_array_follow_their_element() {
        // Unchanged.
        assert_eq!(restore_urls(&URLS, |_| {}).unwrap(), json!(URLS));
        // The first dropped: bob keeps his own password, not ann's.
        assert_eq!(
            restore_urls(&URLS, |u| {
                u.remove(0);
            })
            .unwrap(),
            json!(URLS[1..])
        );
        // The middle dropped.
        assert_eq!(
            restore_urls(&URLS, |u| {
                u.remove(1);
            })
            .unwrap(),
            json!([URLS[0], URLS[2]])
        );
        // Reordered.
        assert_eq!(
            restore_urls(&URLS, |u| u.reverse()).unwrap(),
            json!([URLS[2], URLS[1], URLS[0]])
        );
        // A new element inserted at the front, in clear text.
        assert_eq!(
            restore_urls(&URLS, |u| u
                .insert(0, json!("https://dee:pw-new@d.example/x")))
            .unwrap(),
            json!(["https://dee:pw-new@d.example/x", URLS[0], URLS[1], URLS[2]])
        );
        // Dropped and moved at once.
        assert_eq!(
            restore_urls(&URLS, |u| {
                u.remove(0);
                u.reverse();
            })
            .unwrap(),
            json!([URLS[2], URLS[1]])
        );
    }

    #[test]
    fn a_masked_array_element_that_prints_like_no_current_one_is_refused() {
        // Bob's host changed while his password stayed masked, and ann was dropped: the
        // element at bob's new index is ann's, whose password must not be given to him.
        let e = restore_urls(&URLS, |u| {
            u.remove(0);
            u[0] = json!("https://bob:****@new.example/x");
        })
        .unwrap_err();
        assert_eq!(e.field(), "config.mirrors.urls[0]");
        assert!(e.to_string().contains("give it in clear text"), "{e}");
        // Moved to the front with its host changed: the element it replaced in place (ann's)
        // was sent back too, so it is not ann's password either.
        let e = restore_urls(&URLS, |u| {
            u.swap(0, 1);
            u[0] = json!("https://bob:****@new.example/x");
        })
        .unwrap_err();
        assert_eq!(e.field(), "config.mirrors.urls[0]");
        // Edited in place (same length, nothing else moved): the host changes, the
        // password stays.
        assert_eq!(
            restore_urls(&URLS, |u| u[1] = json!("https://bob:****@new.example/x")).unwrap(),
            json!([URLS[0], "https://bob:pw-two@new.example/x", URLS[2]])
        );
        // An inserted element with a masked credential stands for nothing.
        let e = restore_urls(&URLS, |u| {
            u.insert(1, json!("https://eve:****@e.example/x"))
        })
        .unwrap_err();
        assert_eq!(e.field(), "config.mirrors.urls[1]");
    }

    #[test]
    fn look_alike_masked_elements_are_kept_only_when_all_are_sent_back() {
        // Two elements that print alike but hold different passwords.
        let twins = [
            "https://svc:first@h.example",
            "https://svc:second@h.example",
        ];
        // Both sent back: both kept, in order.
        assert_eq!(restore_urls(&twins, |_| {}).unwrap(), json!(twins));
        assert_eq!(
            restore_urls(&twins, |u| u.push(json!("https://new:pw@n.example"))).unwrap(),
            json!([twins[0], twins[1], "https://new:pw@n.example"])
        );
        // One dropped: which one cannot be told from the masks, so it is refused.
        let e = restore_urls(&twins, |u| {
            u.remove(0);
        })
        .unwrap_err();
        assert_eq!(e.field(), "config.mirrors.urls[0]");
        assert!(e.to_string().contains("ambiguous"), "{e}");
        // Alike elements with the same value are one value: nothing to tell apart.
        let same = ["https://svc:pw@h.example", "https://svc:pw@h.example"];
        assert_eq!(
            restore_urls(&same, |u| {
                u.remove(0);
            })
            .unwrap(),
            json!(["https://svc:pw@h.example"])
        );
        // Short secrets under a secret name print alike too (`****`).
        let current = json!({"p": {"api_keys": ["short-a", "short-b", "sk-longerkey000000000"]}});
        let mut patch = json!({"p": {"api_keys": ["****", "sk-...0000"]}});
        let e = restore_masked(&mut patch, &current).unwrap_err();
        assert_eq!(e.field(), "config.p.api_keys[0]");
        let mut patch = json!({"p": {"api_keys": ["sk-...0000", "****", "****"]}});
        restore_masked(&mut patch, &current).unwrap();
        assert_eq!(
            patch["p"]["api_keys"],
            json!(["sk-longerkey000000000", "short-a", "short-b"])
        );
    }

    #[test]
    fn a_masked_secret_sent_back_keeps_the_real_one() {
        let current =
            json!({"providers": {"openai": {"api_key": "sk-proj-abcdefghijklmnop", "timeout": 5}}});
        let mut patch = current.clone();
        mask_secrets(&mut patch);
        patch["providers"]["openai"]["timeout"] = json!(9);
        restore_masked(&mut patch, &current).unwrap();
        assert_eq!(
            patch["providers"]["openai"]["api_key"],
            "sk-proj-abcdefghijklmnop"
        );
        let mut new_key = json!({"providers": {"openai": {"api_key": "sk-new-key-0000000000"}}});
        restore_masked(&mut new_key, &current).unwrap();
        assert_eq!(
            new_key["providers"]["openai"]["api_key"],
            "sk-new-key-0000000000"
        );
    }

    #[test]
    fn provider_keys_are_masked_everywhere() {
        let mut v = json!({"providers": {"openai": {"api_key": "sk-proj-abcdefghijklmnop", "base_url": "https://x"},
            "aws": {"credentials": {"aws_secret_access_key": "AKIAverysecretvalue", "region": "eu"}}}});
        mask_secrets(&mut v);
        let s = v.to_string();
        assert!(s.contains("sk-...mnop"), "{s}");
        assert!(!s.contains("abcdefghijkl"));
        assert!(!s.contains("verysecret"));
        assert!(s.contains("https://x"));
        assert_eq!(mask_secret("short"), "****");
        assert_eq!(
            mask_secret(&mask_secret("sk-proj-abcdefghijklmnop")),
            "sk-...mnop"
        );
    }

    #[test]
    fn the_vocabulary_is_case_and_separator_insensitive() {
        for name in [
            "api_key",
            "apiKey",
            "APIKey",
            "API-KEY",
            "x-api-key",
            "X-Api-Key",
            "api-key",
            "api_keys",
            "Authorization",
            "proxy-authorization",
            "accessToken",
            "sessionToken",
            "privateKey",
            "private_key",
            "password",
            "passwd",
            "DB_PASSWORD",
            "auth",
            "basic_auth",
            "X-Auth-Header",
            "key",
            "key2",
            "keys",
            "signing_key",
            "Ocp-Apim-Subscription-Key",
            "client_secret",
            "credentials",
            "pin",
            "user_pin",
            "token",
            "bearer_token",
            "Cookie",
            "aws_secret_access_key",
            "tokenValue",
            "github_token_2",
            "bearer",
            "OPENAI_kEy",
        ] {
            assert!(is_secret_field(name), "{name}");
        }
        // Typed fields and common non-secret names stay readable.
        for name in [
            "per_key_rpm",
            "per_key_tpm",
            "rpm",
            "tpm",
            "global_rpm",
            "global_tpm",
            "limit",
            "org_limit",
            "hard_limit",
            "warn_threshold",
            "period",
            "org_period",
            "enabled",
            "allow",
            "deny",
            "allowed_models",
            "max_tokens",
            "token_limit",
            "token_url",
            "tokens",
            "tokenizer",
            "author",
            "monkey",
            "base_url",
            "region",
            "key_prefix",
            "model",
        ] {
            assert!(!is_secret_field(name), "{name}");
        }
    }

    /// Every name an older orgstore sealed is still recognised, so its sealed values are
    /// still found and opened.
    #[test]
    fn the_rule_covers_every_name_the_older_rule_sealed() {
        fn older(name: &str) -> bool {
            let n = name.to_ascii_lowercase();
            const EXACT: &[&str] = &[
                "api_key",
                "apikey",
                "key",
                "secret",
                "password",
                "token",
                "credentials",
            ];
            const SUFFIX: &[&str] = &["_key", "_secret", "_token", "_password", "_credentials"];
            EXACT.contains(&n.as_str())
                || SUFFIX.iter().any(|s| n.ends_with(s))
                || n.contains("secret")
                || n.contains("password")
        }
        let parts = [
            "",
            "api",
            "Api",
            "key",
            "KEY",
            "kEy",
            "_",
            "-",
            ".",
            "token",
            "TOKEN",
            "Secret",
            "password",
            "PassWord",
            "credentials",
            "x",
            "2",
            "limit",
            "per",
        ];
        let mut checked = 0;
        for a in parts {
            for b in parts {
                for c in parts {
                    for d in parts {
                        let name = format!("{a}{b}{c}{d}");
                        if older(&name) {
                            assert!(is_secret_field(&name), "{name}");
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 1000, "{checked}");
    }

    #[test]
    fn url_credentials_are_found_anywhere_in_a_string() {
        let cases = [
            ("https://user:PASS@host/p", "https://user:****@host/p"),
            ("redis://:PASS@host:6379", "redis://:****@host:6379"),
            ("postgres://u:p@ss:w@db/x?y=1", "postgres://u:****@db/x?y=1"),
            ("https://TOKEN@github.com/x", "https://****@github.com/x"),
            (
                "a https://u:A@h and amqp://v:B@k",
                "a https://u:****@h and amqp://v:****@k",
            ),
            (
                "https://g.example/v1?alt=json&key=AIzaSECRET&x=1",
                "https://g.example/v1?alt=json&key=****&x=1",
            ),
            (
                "Server=db;User ID=sa;Password=Pa55;AccountKey=abc==",
                "Server=db;User ID=sa;Password=****;AccountKey=****",
            ),
            (
                "https://x/b?sv=1&sig=SAS%2Fsig&se=2",
                "https://x/b?sv=1&sig=****&se=2",
            ),
            (
                "-H 'Authorization: Bearer eyJ.abc-123' -d",
                "-H 'Authorization: Bearer ****' -d",
            ),
            ("api_key=k1 token=k2", "api_key=**** token=****"),
            ("https://h/?token=https://u:p@x", "https://h/?token=****"),
        ];
        for (clear, masked) in cases {
            assert_eq!(mask_in_string(clear).as_deref(), Some(masked), "{clear}");
        }
        for plain in [
            "https://host/@user",
            "https://host/path?a=b@c",
            "mailto:a@b.c",
            "https://user:@host",
            "://x:y@z",
            "https://h/?model=gpt&max_tokens=5",
            "key=",
            "monkey=banana",
            "unbearer x",
        ] {
            assert_eq!(mask_in_string(plain), None, "{plain}");
        }
    }

    #[test]
    fn every_shape_of_mask_round_trips() {
        let current = json!({"providers": {"p": {
            "pin": 1234,
            "credentials": {"id": "AKIAverysecretvalue", "nested": {"k": "zzzzzzzzzzzzzzzz"}},
            "api_keys": ["sk-aaaaaaaaaaaaaaaa1111", "sk-bbbbbbbbbbbbbbbb2222"],
            "url": "https://user:hunter2@old.example/x"}}});
        let mut patch = current.clone();
        mask_secrets(&mut patch);
        assert_ne!(patch, current);
        restore_masked(&mut patch, &current).unwrap();
        assert_eq!(patch, current);
        // One key changed, the host changed, one element dropped from the front.
        let mut patch = mask_at(&current, false);
        patch["providers"]["p"]["api_keys"] = json!(["sk-...2222", "sk-newkey000000000000"]);
        patch["providers"]["p"]["url"] = json!("https://user:****@new.example/x");
        restore_masked(&mut patch, &current).unwrap();
        assert_eq!(
            patch["providers"]["p"]["api_keys"],
            json!(["sk-bbbbbbbbbbbbbbbb2222", "sk-newkey000000000000"])
        );
        assert_eq!(
            patch["providers"]["p"]["url"],
            "https://user:hunter2@new.example/x"
        );
        // A mask that stands for nothing is refused.
        for bad in [
            json!({"providers": {"p": {"api_key": "****"}}}),
            json!({"providers": {"p": {"pin": "sk-...9999"}}}),
            json!({"providers": {"q": {"url": "https://u:****@h"}}}),
        ] {
            let mut b = bad.clone();
            assert!(restore_masked(&mut b, &current).is_err(), "{bad}");
        }
    }
}
