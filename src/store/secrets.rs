//! Secrets at rest: every secret the masking rule recognises (see `config::mask`) is
//! encrypted before a config version is written to the store file and decrypted when it is
//! read, so masking, reveal, diff, merge patch and validation all work on clear text while
//! the file holds only ciphertext.
//!
//! * A secret-named value (a string, a number, or a whole object or array) becomes the
//!   string `enc:v1:<base64 of nonce (12 bytes) + ciphertext>`, the ciphertext being
//!   ChaCha20-Poly1305 over the value's JSON text under a 256-bit store key.
//! * An inline credential in any other string (a URL's userinfo, a secret-named parameter,
//!   a `Bearer` token: `config::mask::string_credentials`) is replaced in place by
//!   `enc:v1:<unpadded base64url of nonce + ciphertext>`, so the rest of the string (scheme,
//!   user, host, path, other parameters) stays as it was.
//!
//! The key lives in a sidecar file `<db path>.key` (64 hex digits, mode 0600) created next
//! to the store; an in-memory store uses a random in-memory key. Losing the key file makes
//! the sealed values unreadable and nothing else: orgs, members, keys, the gateway and the
//! non-secret parts of configs keep working, and an update that sets the lost secrets again
//! repairs the config.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::TryRngCore;
use serde_json::Value;
use zeroize::Zeroizing;

use super::records::ConfigRecord;
use crate::config::{OrgConfig, SEALED_PREFIX, is_secret_field, string_credentials};
use crate::error::{Error, ErrorKind};

const NONCE_LEN: usize = 12;
/// Binds ciphertexts to their purpose.
const AAD: &[u8] = b"orgstore config secret v1";

/// The store key and what to call it in messages.
pub(crate) struct Sealer {
    key: Zeroizing<[u8; 32]>,
    /// `the store key file `x.key`` or `the in-memory store key`.
    source: String,
}

/// Never shows the key.
impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer({})", self.source)
    }
}

/// A secret value that could not be decrypted (lost or replaced key file) and was left
/// sealed.
#[derive(Clone, Debug)]
pub(crate) struct Unreadable {
    /// Dotted path for messages, e.g. `config.providers.openai.api_key`.
    pub field: String,
    /// JSON pointer to the value.
    pointer: String,
    /// The sealed text found there (the whole value, or the token inside a URL).
    sealed: String,
}

/// A stored config opened with the store key.
pub(crate) struct Opened {
    /// The config, with clear secrets (unreadable ones left sealed).
    pub config: OrgConfig,
    /// Values that could not be decrypted.
    pub unreadable: Vec<Unreadable>,
}

/// The fingerprint ([`Sealer::fingerprint`]) of the key file at `path`; `None` when there
/// is none.
#[cfg(feature = "fleet")]
pub(crate) fn key_file_fingerprint(path: &Path) -> Result<Option<String>, Error> {
    Ok(read_key_file(path)?.map(|key| {
        Sealer {
            key,
            source: String::new(),
        }
        .fingerprint()
    }))
}

/// The sidecar key file of a store file: `<db path>.key`.
pub(crate) fn key_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(".key");
    PathBuf::from(s)
}

fn random_bytes<const N: usize>() -> Result<Zeroizing<[u8; N]>, Error> {
    let mut out = Zeroizing::new([0u8; N]);
    rand::rngs::OsRng
        .try_fill_bytes(&mut out[..])
        .map_err(|e| Error::storage("drawing random bytes for the store key", e))?;
    Ok(out)
}

impl Sealer {
    /// A random key held in memory only (in-memory stores).
    pub(crate) fn random() -> Result<Self, Error> {
        Ok(Self {
            key: random_bytes::<32>()?,
            source: "the in-memory store key".into(),
        })
    }

    /// Reads the key file at `path` without ever creating it (a read-only store writes no
    /// file): when it is absent the key is random, so sealed secrets read as unreadable.
    pub(crate) fn load_existing(path: &Path) -> Result<Self, Error> {
        let source = format!("the store key file `{}`", path.display());
        match read_key_file(path)? {
            Some(key) => Ok(Self { key, source }),
            None => Ok(Self {
                key: random_bytes::<32>()?,
                source: format!("{source} (absent)"),
            }),
        }
    }

    /// Reads the key file at `path`, creating it (mode 0600) with a fresh key if absent.
    pub(crate) fn load_or_create(path: &Path) -> Result<Self, Error> {
        let source = format!("the store key file `{}`", path.display());
        match read_key_file(path)? {
            Some(key) => Ok(Self { key, source }),
            None => Ok(Self {
                key: create_key_file(path)?,
                source,
            }),
        }
    }

    /// A fingerprint of the key that reveals nothing of it (a hash of a fixed label and the
    /// key): replicas of one fleet must hold the same key file, and compare this to know.
    #[cfg(feature = "fleet")]
    pub(crate) fn fingerprint(&self) -> String {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(b"orgstore store key fingerprint v1");
        h.update(&self.key[..]);
        h.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(Key::from_slice(&self.key[..]))
    }

    /// The canonical JSON text of `v` with every secret-named value sealed: what the store
    /// file holds.
    pub(crate) fn seal_json(&self, v: &Value) -> Result<String, Error> {
        let mut v = v.clone();
        self.seal_in_place(&mut v)?;
        Ok(v.to_string())
    }

    fn seal_in_place(&self, v: &mut Value) -> Result<(), Error> {
        match v {
            Value::Object(o) => {
                for (k, val) in o.iter_mut() {
                    if is_secret_field(k) {
                        if !matches!(val, Value::Null | Value::Bool(_)) {
                            let sealed = B64.encode(self.seal_bytes(val)?);
                            *val = Value::String(format!("{SEALED_PREFIX}{sealed}"));
                        }
                    } else {
                        self.seal_in_place(val)?;
                    }
                }
            }
            Value::Array(items) => {
                for item in items {
                    self.seal_in_place(item)?;
                }
            }
            Value::String(s) => {
                let creds = string_credentials(s);
                for r in creds.into_iter().rev() {
                    let clear = Value::String(s.get(r.clone()).unwrap_or_default().to_owned());
                    let sealed = B64URL.encode(self.seal_bytes(&clear)?);
                    s.replace_range(r, &format!("{SEALED_PREFIX}{sealed}"));
                }
            }
            Value::Number(_) | Value::Bool(_) | Value::Null => {}
        }
        Ok(())
    }

    /// Nonce and ciphertext of `v`'s JSON text.
    fn seal_bytes(&self, v: &Value) -> Result<Vec<u8>, Error> {
        let clear = Zeroizing::new(
            serde_json::to_vec(v).map_err(|e| Error::storage("encrypting a config secret", e))?,
        );
        let nonce = random_bytes::<NONCE_LEN>()?;
        let ct = self
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce[..]),
                Payload {
                    msg: &clear,
                    aad: AAD,
                },
            )
            .map_err(|_| Error::storage("encrypting a config secret", "cipher failure"))?;
        let mut raw = Vec::with_capacity(NONCE_LEN + ct.len());
        raw.extend_from_slice(&nonce[..]);
        raw.extend_from_slice(&ct);
        Ok(raw)
    }

    fn open_value(&self, sealed: &str) -> Option<Value> {
        self.open_bytes(&B64.decode(sealed.strip_prefix(SEALED_PREFIX)?).ok()?)
    }

    fn open_bytes(&self, raw: &[u8]) -> Option<Value> {
        if raw.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let clear = Zeroizing::new(
            self.cipher()
                .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: AAD })
                .ok()?,
        );
        serde_json::from_slice(&clear).ok()
    }

    /// Decrypts the sealed inline credentials inside `s`; the tokens that cannot be decrypted
    /// stay and are returned.
    fn open_tokens(&self, s: &mut String) -> Vec<String> {
        let mut failed = Vec::new();
        for r in sealed_tokens(s).into_iter().rev() {
            let token = s.get(r.clone()).unwrap_or_default();
            let clear = token
                .strip_prefix(SEALED_PREFIX)
                .and_then(|b| B64URL.decode(b).ok())
                .and_then(|raw| self.open_bytes(&raw));
            match clear {
                Some(Value::String(clear)) => s.replace_range(r, &clear),
                _ => failed.push(token.to_owned()),
            }
        }
        failed
    }

    /// Decrypts every sealed value in place; values that cannot be decrypted stay sealed
    /// and are listed. Clear values of secret-named fields (stores written before secrets
    /// were sealed) are read as they are.
    fn open_in_place(&self, v: &mut Value, pointer: &mut String, out: &mut Vec<Unreadable>) {
        match v {
            Value::Object(o) => {
                for (k, val) in o.iter_mut() {
                    let len = pointer.len();
                    pointer.push('/');
                    pointer.push_str(&k.replace('~', "~0").replace('/', "~1"));
                    match val {
                        Value::String(s) if is_secret_field(k) && s.starts_with(SEALED_PREFIX) => {
                            match self.open_value(s) {
                                Some(clear) => *val = clear,
                                None => out.push(Unreadable {
                                    field: dotted(pointer),
                                    pointer: pointer.clone(),
                                    sealed: s.clone(),
                                }),
                            }
                        }
                        _ if is_secret_field(k) => {}
                        _ => self.open_in_place(val, pointer, out),
                    }
                    pointer.truncate(len);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let len = pointer.len();
                    pointer.push('/');
                    pointer.push_str(&i.to_string());
                    self.open_in_place(item, pointer, out);
                    pointer.truncate(len);
                }
            }
            Value::String(s) if s.contains(SEALED_PREFIX) => {
                for sealed in self.open_tokens(s) {
                    out.push(Unreadable {
                        field: dotted(pointer),
                        pointer: pointer.clone(),
                        sealed,
                    });
                }
            }
            _ => {}
        }
    }

    /// Opens a stored config version; secrets that cannot be decrypted stay sealed and are
    /// listed (masked reads show them as `enc...`).
    pub(crate) fn open(&self, rec: &ConfigRecord) -> Result<Opened, Error> {
        let mut v: Value =
            serde_json::from_str(&rec.json).map_err(|e| Error::corrupt("config version", e))?;
        let mut unreadable = Vec::new();
        self.open_in_place(&mut v, &mut String::new(), &mut unreadable);
        let config = OrgConfig::from_stored(v).map_err(|e| Error::corrupt("config version", e))?;
        Ok(Opened { config, unreadable })
    }

    /// Opens a stored config version, failing on a secret that cannot be decrypted (for a
    /// reveal).
    pub(crate) fn open_strict(&self, rec: &ConfigRecord) -> Result<OrgConfig, Error> {
        let opened = self.open(rec)?;
        match opened.unreadable.first() {
            Some(u) => Err(self.unreadable_error(u)),
            None => Ok(opened.config),
        }
    }

    /// Seals `next` for storage. `carried` are the unreadable values of the config it was
    /// derived from: each must have been replaced or removed, or the update is refused
    /// (sealing them again would lose them for good).
    pub(crate) fn seal_config(
        &self,
        next: &OrgConfig,
        carried: &[Unreadable],
    ) -> Result<String, Error> {
        for u in carried {
            let held = next.json().pointer(&u.pointer).and_then(Value::as_str);
            if held.is_some_and(|s| s.contains(u.sealed.as_str())) {
                return Err(self.unreadable_error(u));
            }
        }
        self.seal_json(next.json())
    }

    fn unreadable_error(&self, u: &Unreadable) -> Error {
        Error::new(
            ErrorKind::Corrupt,
            u.field.clone(),
            format!(
                "this secret cannot be decrypted with {} (the key file was lost or replaced); \
                 restore the key file from a backup, or set this value again in an update",
                self.source
            ),
        )
    }
}

/// Removes every sealed value: what the gateway snapshot parses (it never needs provider
/// secrets, and the sealed text is longer than the clear text the size limit was checked on).
/// Sealed secret-named values are removed; sealed inline credentials are cut out of their
/// string.
pub(crate) fn strip_sealed(v: &mut Value) {
    match v {
        Value::Object(o) => {
            o.retain(|k, val| {
                !(is_secret_field(k) && val.as_str().is_some_and(|s| s.starts_with(SEALED_PREFIX)))
            });
            o.values_mut().for_each(strip_sealed);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_sealed),
        Value::String(s) => {
            for r in sealed_tokens(s).into_iter().rev() {
                s.replace_range(r, "");
            }
        }
        _ => {}
    }
}

/// The sealed inline credentials in `s`: `enc:v1:` and base64url text. Callers never give
/// `enc:v1:` (it is refused in configs and patches), so nothing else looks like one.
fn sealed_tokens(s: &str) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(off) = s.get(from..).and_then(|t| t.find(SEALED_PREFIX)) {
        let start = from + off;
        let body = start + SEALED_PREFIX.len();
        let rest = s.get(body..).unwrap_or("");
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(rest.len());
        from = body + len;
        if len > 0 {
            out.push(start..from);
        }
    }
    out
}

/// `/providers/openai/api_key` -> `config.providers.openai.api_key`.
fn dotted(pointer: &str) -> String {
    let mut s = String::from("config");
    for part in pointer.split('/').skip(1) {
        s.push('.');
        s.push_str(&part.replace("~1", "/").replace("~0", "~"));
    }
    s
}

fn key_file_error(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::Storage,
        "key file",
        format!("the store key file `{}` {what}", path.display()),
    )
}

/// The key in the file, or `None` when there is no file.
fn read_key_file(path: &Path) -> Result<Option<Zeroizing<[u8; 32]>>, Error> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => Zeroizing::new(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(
                key_file_error(path, "cannot be read; check its permissions").with_source(e),
            );
        }
    };
    let hex = text.trim();
    let mut key = Zeroizing::new([0u8; 32]);
    let bad = || {
        Error::new(
            ErrorKind::Corrupt,
            "key file",
            format!(
                "the store key file `{}` is damaged (expected 64 hex digits); restore it from a backup",
                path.display()
            ),
        )
    };
    if hex.len() != 64 {
        return Err(bad());
    }
    for (i, b) in key.iter_mut().enumerate() {
        let pair = hex.get(i * 2..i * 2 + 2).ok_or_else(bad)?;
        *b = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
    }
    Ok(Some(key))
}

/// Writes a fresh key to `path` with mode 0600: to a temporary file first, then linked into
/// place, so a crash never leaves a partial key file and two processes agree on one key.
fn create_key_file(path: &Path) -> Result<Zeroizing<[u8; 32]>, Error> {
    use std::io::Write as _;
    let key = random_bytes::<32>()?;
    let mut hex = Zeroizing::new(String::with_capacity(65));
    for b in key.iter() {
        hex.push_str(&format!("{b:02x}"));
    }
    hex.push('\n');
    let suffix: u64 = rand::random();
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{suffix:016x}"));
    let tmp = PathBuf::from(tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let written = opts.open(&tmp).and_then(|mut f| {
        f.write_all(hex.as_bytes())?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(
            key_file_error(path, "cannot be created; check the directory is writable")
                .with_source(e),
        );
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                // Best effort: make the new directory entry durable.
                let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
            }
            Ok(key)
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key_file(path)?
            .ok_or_else(|| key_file_error(path, "vanished while being created; retry")),
        Err(e) => Err(
            key_file_error(path, "cannot be created; check the directory is writable")
                .with_source(e),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(json: String) -> ConfigRecord {
        ConfigRecord {
            version: 2,
            created_at: crate::model::Timestamp::from_micros(0),
            created_by: "operator".into(),
            json,
            note: "update".into(),
        }
    }

    #[test]
    fn round_trip_hides_every_secret_and_keeps_the_rest() {
        let s = Sealer::random().unwrap();
        let cfg = OrgConfig::from_value(json!({"providers": {
            "openai": {"api_key": "sk-proj-abcdefghijklmnop", "base_url": "https://x"},
            "aws": {"credentials": {"id": "AKIAverysecretvalue"}, "pin_password": 1234, "enabled": true},
            "list": [{"token": "tok-zzzzzzzzzzzz"}]}})).unwrap();
        let text = s.seal_json(cfg.json()).unwrap();
        for secret in ["abcdefghijkl", "verysecret", "1234", "zzzzzzzz"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(text.contains("https://x") && text.contains("enc:v1:"));
        let opened = s.open(&rec(text.clone())).unwrap();
        assert!(opened.unreadable.is_empty());
        assert_eq!(opened.config, cfg);
        // The gateway's view drops sealed values only.
        let mut v: Value = serde_json::from_str(&text).unwrap();
        strip_sealed(&mut v);
        assert_eq!(
            v,
            json!({"providers": {"openai": {"base_url": "https://x"}, "aws": {"enabled": true}, "list": [{}]}})
        );
    }

    #[test]
    fn url_credentials_are_sealed_in_place() {
        let a = Sealer::random().unwrap();
        let cfg = OrgConfig::from_value(json!({"cache": {
            "url": "redis://:hunter2hunter2@cache.internal:6379/0",
            "mirrors": ["https://bob:pa55w0rd-x@m1.example/a b https://TOKEN1234567@m2.example"],
            "gemini": "https://g.example/v1?key=AIzaSyGEMINIkey&alt=json",
            "curl": "-H 'Authorization: Bearer eyJhbGciBEARERtok' -d x"}}))
        .unwrap();
        let text = a.seal_json(cfg.json()).unwrap();
        for secret in [
            "hunter2",
            "pa55w0rd",
            "TOKEN1234567",
            "GEMINIkey",
            "BEARERtok",
        ] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(text.contains("redis://:enc:v1:") && text.contains("@cache.internal:6379/0"));
        assert!(text.contains("https://bob:enc:v1:"), "{text}");
        let opened = a.open(&rec(text.clone())).unwrap();
        assert!(opened.unreadable.is_empty());
        assert_eq!(opened.config, cfg);
        // The gateway's view cuts the sealed credentials out.
        let mut v: Value = serde_json::from_str(&text).unwrap();
        strip_sealed(&mut v);
        assert_eq!(v["cache"]["url"], "redis://:@cache.internal:6379/0");
        assert_eq!(v["cache"]["gemini"], "https://g.example/v1?key=&alt=json");
        // Under another key: unreadable, named, masked as `****`, and not carried on.
        let b = Sealer::random().unwrap();
        let opened = b.open(&rec(text)).unwrap();
        assert_eq!(opened.unreadable.len(), 5);
        let mut fields: Vec<&str> = opened.unreadable.iter().map(|u| u.field.as_str()).collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            [
                "config.cache.curl",
                "config.cache.gemini",
                "config.cache.mirrors.0",
                "config.cache.mirrors.0",
                "config.cache.url"
            ]
        );
        let masked = opened.config.masked_value();
        assert_eq!(
            masked["cache"]["gemini"],
            "https://g.example/v1?key=****&alt=json"
        );
        assert_eq!(
            masked["cache"]["curl"],
            "-H 'Authorization: Bearer ****' -d x"
        );
        assert_eq!(
            masked["cache"]["url"],
            "redis://:****@cache.internal:6379/0"
        );
        let moved = opened
            .config
            .merge_patch(r#"{"cache":{"url":"redis://:****@elsewhere:6379/0"}}"#)
            .unwrap();
        assert!(b.seal_config(&moved, &opened.unreadable).is_err());
    }

    #[test]
    fn another_key_leaves_values_sealed_and_named() {
        let a = Sealer::random().unwrap();
        let b = Sealer::random().unwrap();
        let cfg = OrgConfig::from_value(
            json!({"providers": {"o/x": {"api_key": "sk-1234567890abcdef"}}}),
        )
        .unwrap();
        let stored = rec(a.seal_json(cfg.json()).unwrap());
        let opened = b.open(&stored).unwrap();
        assert_eq!(opened.unreadable.len(), 1);
        assert_eq!(opened.unreadable[0].field, "config.providers.o/x.api_key");
        let e = b.open_strict(&stored).unwrap_err();
        assert_eq!(e.field(), "config.providers.o/x.api_key");
        assert!(e.to_string().contains("in-memory store key"), "{e}");
        // Carrying the unreadable value into a new version is refused; replacing it works.
        assert!(b.seal_config(&opened.config, &opened.unreadable).is_err());
        let fixed = opened
            .config
            .merge_patch(r#"{"providers":{"o/x":{"api_key":"sk-new-0123456789"}}}"#)
            .unwrap();
        let text = b.seal_config(&fixed, &opened.unreadable).unwrap();
        assert_eq!(b.open_strict(&rec(text)).unwrap(), fixed);
    }

    #[test]
    fn legacy_clear_values_and_garbage_are_handled() {
        let s = Sealer::random().unwrap();
        let clear = rec(r#"{"providers":{"openai":{"api_key":"sk-legacy-clear-value"}}}"#.into());
        let c = s.open_strict(&clear).unwrap();
        assert_eq!(
            c.json()["providers"]["openai"]["api_key"],
            "sk-legacy-clear-value"
        );
        for junk in [
            "enc:v1:",
            "enc:v1:!!!",
            "enc:v1:AAAA",
            "enc:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            let r = rec(format!(
                r#"{{"providers":{{"openai":{{"api_key":"{junk}"}}}}}}"#
            ));
            assert_eq!(s.open(&r).unwrap().unreadable.len(), 1, "{junk}");
        }
    }

    #[test]
    fn key_file_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.redb");
        let p = key_path(&db);
        assert_eq!(p, dir.path().join("s.redb.key"));
        let a = Sealer::load_or_create(&p).unwrap();
        let b = Sealer::load_or_create(&p).unwrap();
        assert_eq!(*a.key, *b.key);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
        std::fs::write(&p, "not hex").unwrap();
        assert_eq!(
            Sealer::load_or_create(&p).unwrap_err().kind(),
            ErrorKind::Corrupt
        );
        assert_eq!(
            format!("{a:?}"),
            format!("Sealer(the store key file `{}`)", p.display())
        );
    }
}
