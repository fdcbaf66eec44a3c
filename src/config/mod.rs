//! Org config: typed sections the store enforces, pass-through sections it stores and
//! versions, JSON merge patch updates (RFC 7396), aliases, validation, masking and diffs.

mod diff;
mod fields;
pub(crate) mod ip;
mod json;
mod mask;
mod sections;

pub use diff::ConfigChange;
pub(crate) use diff::diff;
pub use fields::whole as parse_whole_number;
#[cfg(feature = "fuzzing")]
pub(crate) use mask::looks_masked;
pub(crate) use mask::{SEALED_PREFIX, is_secret_field, mask_secrets, string_credentials};
pub use sections::{BudgetPolicy, IpAcl, RateLimiting};

use serde_json::{Map, Value};

use crate::error::Error;
use fields::apply_aliases;

/// The largest config accepted, as JSON text.
pub const MAX_CONFIG_BYTES: usize = 1 << 20;

/// Top-level sections stored and versioned as JSON objects without interpretation.
const PASS_THROUGH: &[&str] = &[
    "providers",
    "routing",
    "cache",
    "guardrails",
    "cost_tracking",
    "alerting",
    "privacy",
    "audit",
    "model_map",
];
const TYPED: &[&str] = &["rate_limiting", "budgets", "ip_acl", "allowed_models"];
const TOP_ALIASES: &[(&str, &str)] = &[("caching", "cache")];

/// One validated version of an org's config.
///
/// ```
/// use orgstore::OrgConfig;
/// let c = OrgConfig::parse(r#"{"rate_limiting":{"global_rpm":1000},"budgets":{"limit":500.00,"period":"monthly"}}"#).unwrap();
/// assert_eq!(c.rate_limiting().rpm, Some(1000));
/// assert_eq!(c.budgets().unwrap().limit.unwrap().micros(), 500_000_000);
/// assert!(OrgConfig::parse(r#"{"rate_limitng":{}}"#).unwrap_err().to_string().contains("rate_limiting"));
/// ```
#[derive(Clone, PartialEq)]
pub struct OrgConfig {
    json: Value,
    rate: RateLimiting,
    budgets: Option<BudgetPolicy>,
    ip_acl: IpAcl,
    allowed_models: Option<Vec<String>>,
}

/// Shows the JSON with secrets masked: a config may end up in a log through `{:?}`.
impl std::fmt::Debug for OrgConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrgConfig")
            .field("json", &self.masked_value())
            .finish_non_exhaustive()
    }
}

impl Default for OrgConfig {
    fn default() -> Self {
        Self {
            json: Value::Object(Map::new()),
            rate: RateLimiting::default(),
            budgets: None,
            ip_acl: IpAcl::default(),
            allowed_models: None,
        }
    }
}

impl OrgConfig {
    /// Parses and validates a whole config from JSON text.
    pub fn parse(text: &str) -> Result<Self, Error> {
        Self::from_value(parse_json(text)?)
    }

    /// Validates a whole config; aliases are rewritten to their canonical names and model
    /// names are stored trimmed.
    ///
    /// A string holding `enc:v1:` (what marks an encrypted secret in the store file) is
    /// refused: give secrets in clear text.
    pub(crate) fn from_value(v: Value) -> Result<Self, Error> {
        mask::reject_sealed_text(&v)?;
        Self::build(v, false)
    }

    /// Reads a stored config version (where secrets that cannot be decrypted stay sealed):
    /// validated when it was written, so what an earlier build accepted keeps the meaning
    /// it had. An IPv4-mapped range shorter than /96 keeps its range; model names the model
    /// name rule refuses (control or invisible characters) are left out of the allow-list,
    /// which can only narrow it. The next update must fix both.
    pub(crate) fn from_stored(v: Value) -> Result<Self, Error> {
        Self::build(v, true)
    }

    /// Validates a config; `stored` relaxes the rules for what an earlier build accepted.
    fn build(mut v: Value, stored: bool) -> Result<Self, Error> {
        let ip_rules = if stored {
            ip::Rules::Stored
        } else {
            ip::Rules::New
        };
        canonicalize(&mut v)?;
        let obj = v.as_object().ok_or_else(|| {
            Error::invalid(
                "config",
                "must be a JSON object such as {\"rate_limiting\": {...}}",
            )
        })?;
        for (k, val) in obj {
            if PASS_THROUGH.contains(&k.as_str()) && !val.is_object() {
                return Err(Error::invalid(
                    format!("config.{k}"),
                    "must be a JSON object (use null in a patch to remove it)",
                ));
            }
        }
        let rate = match obj.get("rate_limiting") {
            Some(s) => RateLimiting::parse(s)?,
            None => RateLimiting::default(),
        };
        let budgets = obj.get("budgets").map(BudgetPolicy::parse).transpose()?;
        let ip_acl = match obj.get("ip_acl") {
            Some(s) => IpAcl::parse(s, ip_rules)?,
            None => IpAcl::default(),
        };
        let allowed_models = obj
            .get("allowed_models")
            .map(|m| parse_models(m, stored))
            .transpose()?;
        let mut json = v;
        if let Some(list) = &allowed_models
            && !stored
            && let Some(slot) = json.get_mut("allowed_models")
        {
            *slot = Value::from(list.clone());
        }
        if let Some(b) = &budgets
            && let Some(o) = json.get_mut("budgets").and_then(Value::as_object_mut)
        {
            b.write_canonical(o);
        }
        let size = serde_json::to_vec(&json)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > MAX_CONFIG_BYTES {
            return Err(too_large());
        }
        Ok(Self {
            json,
            rate,
            budgets,
            ip_acl,
            allowed_models,
        })
    }

    /// Applies a JSON merge patch (RFC 7396) and validates the result whole.
    /// `self` is unchanged whatever happens.
    ///
    /// Whatever [`Self::to_masked_json`] printed can be sent back unchanged: a value equal
    /// to the mask of the current secret at its place keeps that secret (strings, numbers,
    /// values inside secret objects and arrays, URL passwords written `****`); a changed
    /// value replaces it; a mask that stands for no current secret is refused.
    ///
    /// ```
    /// use orgstore::OrgConfig;
    /// let c = OrgConfig::parse(r#"{"rate_limiting":{"rpm":10,"tpm":99}}"#).unwrap();
    /// let c2 = c.merge_patch(r#"{"rate_limiting":{"tpm":null,"rpm":20}}"#).unwrap();
    /// assert_eq!(c2.rate_limiting().rpm, Some(20));
    /// assert_eq!(c2.rate_limiting().tpm, None);
    /// ```
    pub fn merge_patch(&self, patch_text: &str) -> Result<Self, Error> {
        let mut patch = parse_json(patch_text)?;
        if !patch.is_object() {
            return Err(Error::invalid(
                "config",
                "a patch must be a JSON object such as {\"rate_limiting\": {\"rpm\": 100}}",
            ));
        }
        canonicalize(&mut patch)?;
        mask::reject_sealed_text(&patch)?;
        mask::restore_masked(&mut patch, &self.json)?;
        let mut merged = self.json.clone();
        json_patch::merge(&mut merged, &patch);
        // The patch was checked for sealed text above; the merged whole is held to the
        // rules of new input.
        Self::build(merged, false)
    }

    /// The canonical JSON, secrets included. Handle with care.
    pub(crate) fn json(&self) -> &Value {
        &self.json
    }

    /// The JSON with secrets masked: every string and number under a secret-named field
    /// (`sk-...abcd`, `****`) and every inline credential (`https://user:****@host`,
    /// `?key=****`). The README's "Secrets in the config" section gives the rule.
    ///
    /// ```
    /// let cfg = orgstore::OrgConfig::parse(
    ///     r#"{"providers": {"openai": {"api_key": "sk-proj-abcdefghijklmnop"}}}"#,
    /// )?;
    /// assert_eq!(cfg.to_masked_json(), r#"{"providers":{"openai":{"api_key":"sk-...mnop"}}}"#);
    /// # Ok::<(), orgstore::Error>(())
    /// ```
    pub fn to_masked_json(&self) -> String {
        self.masked_value().to_string()
    }

    /// The JSON value with secrets masked.
    pub(crate) fn masked_value(&self) -> Value {
        let mut v = self.json.clone();
        mask_secrets(&mut v);
        v
    }

    /// The JSON as held, secrets included. A config read from the store holds clear
    /// secrets only when it came from [`crate::OrgConfigs::reveal`], which needs the Owner
    /// or Admin role; every other read returns a config whose secrets are already masked.
    ///
    /// ```
    /// let cfg = orgstore::OrgConfig::parse(r#"{"rate_limiting": {"rpm": 60}}"#)?;
    /// assert_eq!(cfg.to_revealed_json(), r#"{"rate_limiting":{"rpm":60}}"#);
    /// # Ok::<(), orgstore::Error>(())
    /// ```
    pub fn to_revealed_json(&self) -> String {
        self.json.to_string()
    }

    /// The same config with its secrets masked, for reads that are not reveals.
    pub(crate) fn masked(&self) -> Self {
        Self {
            json: self.masked_value(),
            ..self.clone()
        }
    }

    /// The rate-limit section (disabled when absent).
    pub fn rate_limiting(&self) -> &RateLimiting {
        &self.rate
    }

    /// The budget section, if any.
    pub fn budgets(&self) -> Option<&BudgetPolicy> {
        self.budgets.as_ref()
    }

    /// The IP ACL section (empty when absent).
    pub fn ip_acl(&self) -> &IpAcl {
        &self.ip_acl
    }

    /// The org-level model allow-list; `None` means all models.
    pub fn allowed_models(&self) -> Option<&[String]> {
        self.allowed_models.as_deref()
    }
}

fn too_large() -> Error {
    Error::invalid(
        "config",
        "is larger than 1 MiB; move large data out of the org config",
    )
}

fn parse_json(text: &str) -> Result<Value, Error> {
    if text.len() > MAX_CONFIG_BYTES {
        return Err(too_large());
    }
    json::parse_strict("config", text)
}

fn parse_models(v: &Value, stored: bool) -> Result<Vec<String>, Error> {
    let fix = "must be a list of model names such as [\"gpt-4o-mini\"]; omit it to allow all";
    let items = v
        .as_array()
        .ok_or_else(|| Error::invalid("config.allowed_models", fix))?;
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let field = || format!("config.allowed_models[{i}]");
        let Some(s) = item.as_str() else {
            return Err(Error::invalid(field(), "must be a model name (a string)"));
        };
        if !string_credentials(s).is_empty() {
            // A credential would be masked and sealed, and the gateway never sees those.
            return Err(Error::invalid(
                field(),
                "must be a model name, not text holding a password, key or token",
            ));
        }
        match crate::model::validate_model_name(field(), s) {
            Ok(name) => out.push(name.to_owned()),
            Err(_) if stored => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Checks top-level keys and rewrites aliases, in a whole config or in a patch (so that an
/// upstream-shaped patch replaces the canonical field instead of adding a second spelling).
fn canonicalize(v: &mut Value) -> Result<(), Error> {
    let Some(obj) = v.as_object_mut() else {
        return Ok(());
    };
    apply_aliases("config", obj, TOP_ALIASES)?;
    if let Some(bad) = obj
        .keys()
        .find(|k| !TYPED.contains(&k.as_str()) && !PASS_THROUGH.contains(&k.as_str()))
    {
        let mut valid: Vec<&str> = TYPED.iter().chain(PASS_THROUGH).copied().collect();
        valid.sort_unstable();
        return Err(Error::invalid(
            format!("config.{bad}"),
            format!("unknown section; valid sections are {}", valid.join(", ")),
        ));
    }
    sections::canonicalize_sections(obj)
}

#[cfg(test)]
mod tests;
