//! `orgstore key ...`

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use orgstore::{
    Budget, ImportKey, KeyId, KeyInfo, KeySpec, OrgId, Period, Timestamp, Usd, parse_whole_number,
};
use serde::Deserialize;
use serde_json::Value;

use super::output::{Out, Table, budget_text, fields, key_json, key_status, list_or, opt};
use super::{CliError, Ctx};

/// A budget period as a command-line value.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum PeriodArg {
    /// 00:00 UTC to 00:00 UTC.
    Daily,
    /// Monday 00:00 UTC to the next Monday.
    Weekly,
    /// The 1st of the month 00:00 UTC to the next 1st.
    Monthly,
    /// Never resets.
    Total,
}

impl From<PeriodArg> for Period {
    fn from(p: PeriodArg) -> Self {
        match p {
            PeriodArg::Daily => Period::Daily,
            PeriodArg::Weekly => Period::Weekly,
            PeriodArg::Monthly => Period::Monthly,
            PeriodArg::Total => Period::Total,
        }
    }
}

/// A key's settings. Each one narrows what the org allows; none can widen it.
#[derive(Args)]
pub(crate) struct KeyOpts {
    /// Requests per minute for this key (the org's limits apply too); a whole number in any
    /// JSON spelling (1000, 1e3, 1000.0).
    #[arg(long, value_name = "N", value_parser = rpm_arg)]
    rpm: Option<u32>,
    /// Tokens per minute for this key (the org's limits apply too); a whole number in any
    /// JSON spelling.
    #[arg(long, value_name = "N", value_parser = tpm_arg)]
    tpm: Option<u64>,
    /// Models the key may call, comma-separated (default: all the org allows).
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    models: Vec<String>,
    /// Client addresses or CIDR ranges, comma-separated (default: all the org allows).
    #[arg(long, value_name = "CIDR,..", value_delimiter = ',')]
    ips: Vec<String>,
    /// The key's own spend limit in USD, e.g. 200 or 12.50 (the org's budget applies too).
    #[arg(long, value_name = "USD", allow_negative_numbers = true)]
    budget: Option<String>,
    /// The budget's period.
    #[arg(long, value_enum, requires = "budget", default_value = "monthly")]
    period: PeriodArg,
    /// Allow and flag at the budget instead of denying.
    #[arg(long, requires = "budget")]
    soft: bool,
    /// When the key stops working (RFC 3339, e.g. 2026-12-31T23:59:59Z; at most
    /// 9999-12-30T22:00:00Z).
    #[arg(long, value_name = "RFC3339")]
    expires: Option<String>,
    /// A free-form label (repeatable, each key once); never used for tenancy or permissions.
    #[arg(long = "meta", value_name = "K=V")]
    meta: Vec<String>,
}

impl KeyOpts {
    fn spec(self, name: String) -> Result<KeySpec, CliError> {
        let mut spec = KeySpec::new(name);
        spec.rate_limit_rpm = self.rpm;
        spec.rate_limit_tpm = self.tpm;
        spec.allowed_models = self.models;
        spec.allowed_ips = self.ips;
        if let Some(b) = &self.budget {
            let limit = Usd::parse(b).map_err(|e| CliError::for_flag("--budget", &e))?;
            let budget = Budget::new(limit, self.period.into());
            spec.budget = Some(if self.soft { budget.soft() } else { budget });
        }
        if let Some(t) = &self.expires {
            spec.expires_at =
                Some(Timestamp::parse(t).map_err(|e| CliError::for_flag("--expires", &e))?);
        }
        for kv in &self.meta {
            let (k, v) = kv.split_once('=').ok_or_else(|| {
                CliError::invalid(
                    "--meta",
                    format!("`{kv}` is not K=V; write e.g. --meta team=ml"),
                )
            })?;
            let k = k.trim();
            if spec.metadata.insert(k.to_owned(), v.to_owned()).is_some() {
                return Err(CliError::invalid(
                    "--meta",
                    format!(
                        "`{}` is given twice; give each label once",
                        k.chars().take(64).collect::<String>()
                    ),
                ));
            }
        }
        Ok(spec)
    }

    fn is_default(&self) -> bool {
        self.rpm.is_none()
            && self.tpm.is_none()
            && self.models.is_empty()
            && self.ips.is_empty()
            && self.budget.is_none()
            && self.expires.is_none()
            && self.meta.is_empty()
    }
}

#[derive(Subcommand)]
pub(crate) enum KeyCmd {
    /// Create a key; the full key is printed once, here, and never again.
    Create {
        /// The org id.
        org: String,
        /// Display name.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        opts: KeyOpts,
    },
    /// List an org's keys (display prefixes only).
    List {
        /// The org id.
        org: String,
    },
    /// Show one key (display prefix only).
    Show {
        /// The key id (key_ and 32 hex digits).
        key_id: String,
    },
    /// Revoke a key: every later gateway check refuses it.
    Revoke {
        /// The key id.
        key_id: String,
    },
    /// Issue a new secret for the same key id and settings; the old secret stops working.
    Rotate {
        /// The key id.
        key_id: String,
    },
    /// Import existing keys by the SHA-256 of their secret, all in one transaction.
    #[command(group = clap::ArgGroup::new("source").required(true).args(["sha256", "file"]))]
    Import {
        /// The org id.
        org: String,
        /// SHA-256 of the whole key string, 64 hex digits.
        #[arg(long, value_name = "HEX", requires = "name")]
        sha256: Option<String>,
        /// Display name of the single imported key.
        #[arg(long, requires = "sha256")]
        name: Option<String>,
        /// JSON lines, one key each: {"sha256": "..", "name": "..", "rpm": 100, ...}; `-`
        /// for stdin. Either every key is imported or none is.
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
        #[command(flatten)]
        opts: KeyOpts,
    },
}

pub(crate) fn run(ctx: &Ctx, cmd: KeyCmd, out: &mut Out) -> Result<(), CliError> {
    let a = &ctx.actor;
    match cmd {
        KeyCmd::Create { org, name, opts } => {
            let org = OrgId::parse(&org)?;
            let spec = opts.spec(name)?;
            if let Some(r) = ctx.remote() {
                let (info, key) = r.key_create(&org, &spec)?;
                return secret_out(ctx, out, &info, &key, "created");
            }
            let created = ctx.store()?.keys().create(a, &org, spec)?;
            secret_out(ctx, out, &created.info, created.key.expose(), "created")
        }
        KeyCmd::List { org } => {
            let org = OrgId::parse(&org)?;
            let keys = match ctx.remote() {
                Some(r) => r.key_list(&org)?,
                None => ctx.read_store()?.keys().list(a, &org)?,
            };
            if ctx.json {
                return out.json(&Value::Array(keys.iter().map(key_json).collect()));
            }
            let mut t = Table::new(&[
                "ID", "NAME", "PREFIX", "STATUS", "RPM", "TPM", "MODELS", "IPS", "BUDGET",
                "EXPIRES",
            ]);
            for k in &keys {
                let s = &k.spec;
                t.row(vec![
                    k.id.to_string(),
                    s.name.clone(),
                    k.prefix.clone(),
                    key_status(k).into(),
                    opt(s.rate_limit_rpm),
                    opt(s.rate_limit_tpm),
                    list_or(&s.allowed_models, "all"),
                    list_or(&s.allowed_ips, "any"),
                    s.budget
                        .as_ref()
                        .map_or_else(|| "-".to_owned(), budget_text),
                    opt(s.expires_at),
                ]);
            }
            out.table(&t);
            Ok(())
        }
        KeyCmd::Show { key_id } => {
            let id = KeyId::parse(&key_id)?;
            let k = match ctx.remote() {
                Some(r) => r.key_show(&id)?,
                None => ctx.read_store()?.keys().show(a, &id)?,
            };
            if ctx.json {
                return out.json(&key_json(&k));
            }
            show(out, &k);
            Ok(())
        }
        KeyCmd::Revoke { key_id } => {
            let id = KeyId::parse(&key_id)?;
            let k = match ctx.remote() {
                Some(r) => r.key_revoke(&id)?,
                None => ctx.store()?.keys().revoke(a, &id)?,
            };
            if ctx.json {
                return out.json(&key_json(&k));
            }
            out.line(format!("revoked {} ({}) of `{}`", k.id, k.prefix, k.org));
            Ok(())
        }
        KeyCmd::Rotate { key_id } => {
            let id = KeyId::parse(&key_id)?;
            if let Some(r) = ctx.remote() {
                let (info, key) = r.key_rotate(&id)?;
                return secret_out(ctx, out, &info, &key, "rotated");
            }
            let created = ctx.store()?.keys().rotate(a, &id)?;
            secret_out(ctx, out, &created.info, created.key.expose(), "rotated")
        }
        KeyCmd::Import {
            org,
            sha256,
            name,
            file,
            opts,
        } => {
            let org = OrgId::parse(&org)?;
            let keys = match (sha256, name, file) {
                (_, _, Some(path)) => {
                    if !opts.is_default() {
                        return Err(CliError::invalid(
                            "--file",
                            "give each key's settings in its JSON line, not as flags",
                        ));
                    }
                    read_import_file(&path)?
                }
                (Some(hex), Some(name), None) => vec![ImportKey::new(hex, opts.spec(name)?)],
                _ => {
                    return Err(CliError::invalid(
                        "--sha256",
                        "give --sha256 HEX --name NAME, or --file PATH",
                    ));
                }
            };
            let imported = match ctx.remote() {
                Some(r) => r.key_import(&org, &keys)?,
                None => ctx.store()?.keys().import(a, &org, &keys)?,
            };
            if ctx.json {
                return out.json(&Value::Array(imported.iter().map(key_json).collect()));
            }
            if imported.len() > 20 {
                out.line(format!("imported {} keys into `{org}`", imported.len()));
                return Ok(());
            }
            let mut t = Table::new(&["ID", "NAME"]);
            for k in &imported {
                t.row(vec![k.id.to_string(), k.spec.name.clone()]);
            }
            out.table(&t);
            out.note(format!("imported {} key(s) into `{org}`", imported.len()));
            Ok(())
        }
    }
}

/// Prints a new or rotated key: the only place a full key is ever printed.
fn secret_out(
    ctx: &Ctx,
    out: &mut Out,
    k: &KeyInfo,
    key: &str,
    verb: &str,
) -> Result<(), CliError> {
    if ctx.json {
        let mut v = key_json(k);
        v["key"] = Value::String(key.to_owned());
        return out.json(&v);
    }
    out.line(format!("{verb} key `{}` in `{}`", k.spec.name, k.org));
    fields(
        out,
        &[
            ("id", k.id.to_string()),
            ("prefix", k.prefix.clone()),
            ("key", key.to_owned()),
        ],
    );
    out.note("store the key now: it is shown only this once");
    Ok(())
}

fn show(out: &mut Out, k: &KeyInfo) {
    let s = &k.spec;
    let meta: Vec<String> = s.metadata.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let source = match k.source {
        orgstore::KeySource::Generated => "generated",
        orgstore::KeySource::Imported => "imported",
    };
    fields(
        out,
        &[
            ("id", k.id.to_string()),
            ("org", k.org.to_string()),
            ("name", s.name.clone()),
            ("prefix", k.prefix.clone()),
            ("status", key_status(k).into()),
            ("source", source.into()),
            ("rpm", opt(s.rate_limit_rpm)),
            ("tpm", opt(s.rate_limit_tpm)),
            ("models", list_or(&s.allowed_models, "all the org allows")),
            ("ips", list_or(&s.allowed_ips, "any the org allows")),
            (
                "budget",
                s.budget
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), budget_text),
            ),
            ("expires", opt(s.expires_at)),
            ("metadata", list_or(&meta, "-")),
            ("created", format!("{} by {}", k.created_at, k.created_by)),
            ("rotated", opt(k.rotated_at)),
            ("revoked", opt(k.revoked_at)),
            ("version", k.version.to_string()),
        ],
    );
}

/// One line of an import file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportLine {
    sha256: String,
    name: String,
    /// A whole number in any JSON spelling, as in the config.
    #[serde(default, alias = "rpm")]
    rate_limit_rpm: Option<serde_json::Number>,
    #[serde(default, alias = "tpm")]
    rate_limit_tpm: Option<serde_json::Number>,
    #[serde(default, alias = "models")]
    allowed_models: Vec<String>,
    #[serde(default, alias = "ips")]
    allowed_ips: Vec<String>,
    /// USD, as a number or a string.
    #[serde(default)]
    budget: Option<Value>,
    #[serde(default)]
    period: Option<String>,
    #[serde(default)]
    hard: Option<bool>,
    #[serde(default, alias = "expires")]
    expires_at: Option<String>,
    #[serde(default, deserialize_with = "unique_labels")]
    metadata: BTreeMap<String, String>,
}

/// Metadata labels, refusing a label given twice (serde would keep the last one).
fn unique_labels<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    struct Labels;
    impl<'de> serde::de::Visitor<'de> for Labels {
        type Value = BTreeMap<String, String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object of string labels")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((k, v)) = map.next_entry::<String, String>()? {
                if out.contains_key(&k) {
                    return Err(serde::de::Error::custom(format!(
                        "metadata label `{}` is given twice; give each label once",
                        k.chars().take(64).collect::<String>()
                    )));
                }
                out.insert(k, v);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Labels)
}

/// `--rpm`: the integer rule of config fields (a JSON number whose value is whole).
fn rpm_arg(text: &str) -> Result<u32, String> {
    whole_arg(text, u64::from(u32::MAX)).map(|n| u32::try_from(n).unwrap_or(u32::MAX))
}

/// `--tpm`: the integer rule of config fields.
fn tpm_arg(text: &str) -> Result<u64, String> {
    whole_arg(text, u64::MAX)
}

fn whole_arg(text: &str, max: u64) -> Result<u64, String> {
    parse_whole_number(text.trim())
        .filter(|n| *n <= max)
        .ok_or_else(|| {
            format!("give a whole number from 1 to {max} (1000, 1e3 and 1000.0 all mean 1000)")
        })
}

impl ImportLine {
    fn into_import(self, line: usize) -> Result<ImportKey, CliError> {
        let at = |field: &str| format!("--file line {line}: {field}");
        let mut spec = KeySpec::new(self.name);
        let number = |field: &str, n: Option<serde_json::Number>, max: u64| {
            n.map(|n| {
                parse_whole_number(&n.to_string()).filter(|v| *v <= max).ok_or_else(|| {
                    CliError::invalid(
                        &at(field),
                        format!(
                            "give a whole number from 1 to {max} (1000, 1e3 and 1000.0 all mean 1000)"
                        ),
                    )
                })
            })
            .transpose()
        };
        spec.rate_limit_rpm = number("rpm", self.rate_limit_rpm, u64::from(u32::MAX))?
            .and_then(|n| u32::try_from(n).ok());
        spec.rate_limit_tpm = number("tpm", self.rate_limit_tpm, u64::MAX)?;
        spec.allowed_models = self.allowed_models;
        spec.allowed_ips = self.allowed_ips;
        spec.metadata = self.metadata;
        if let Some(b) = self.budget {
            let limit = match &b {
                Value::Number(n) => Usd::parse(&n.to_string()),
                Value::String(s) => Usd::parse(s),
                _ => {
                    return Err(CliError::invalid(
                        &at("budget"),
                        "give a dollar amount such as 100 or \"12.50\"",
                    ));
                }
            }
            .map_err(|e| CliError::for_flag(&at("budget"), &e))?;
            let period = match self.period {
                Some(p) => p
                    .parse::<Period>()
                    .map_err(|e| CliError::for_flag(&at("period"), &e))?,
                None => Period::Monthly,
            };
            let budget = Budget::new(limit, period);
            spec.budget = Some(if self.hard == Some(false) {
                budget.soft()
            } else {
                budget
            });
        } else if self.period.is_some() || self.hard.is_some() {
            return Err(CliError::invalid(
                &at("period"),
                "needs a budget; add \"budget\": 100",
            ));
        }
        if let Some(t) = self.expires_at {
            spec.expires_at =
                Some(Timestamp::parse(&t).map_err(|e| CliError::for_flag(&at("expires_at"), &e))?);
        }
        Ok(ImportKey::new(self.sha256, spec))
    }
}

/// Reads JSON lines (blank lines skipped); `-` is stdin.
fn read_import_file(path: &std::path::Path) -> Result<Vec<ImportKey>, CliError> {
    let mut text = String::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text)
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut text))
    };
    read.map_err(|e| {
        CliError::invalid(
            "--file",
            format!("cannot read `{}` ({e}); check the path", path.display()),
        )
    })?;
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed: ImportLine = serde_json::from_str(line).map_err(|e| {
            CliError::invalid(
                &format!("--file line {}", i + 1),
                format!("{e}; each line is an object like {{\"sha256\": \"<64 hex>\", \"name\": \"svc\"}}"),
            )
        })?;
        keys.push(parsed.into_import(i + 1)?);
    }
    if keys.is_empty() {
        return Err(CliError::invalid(
            "--file",
            "holds no keys; give one JSON object per line",
        ));
    }
    Ok(keys)
}
