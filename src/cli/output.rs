//! Printing: buffered stdout, aligned plain-text tables, JSON, and the JSON and text forms
//! of the store's records shared by several commands.

use std::fmt::Display;
use std::io::Write;

use orgstore::{Budget, KeyInfo, KeyStatus, Org, Period, Timestamp, Usd};
use serde_json::{Value, json};

use super::CliError;

/// Everything a command prints, written at the end in one go (a closed pipe is not an error).
#[derive(Default)]
pub(crate) struct Out {
    stdout: String,
    notes: Vec<String>,
}

impl Out {
    /// Appends one line to stdout.
    pub(crate) fn line(&mut self, s: impl Display) {
        self.stdout.push_str(&s.to_string());
        self.stdout.push('\n');
    }

    /// Appends `v` as pretty JSON to stdout.
    pub(crate) fn json(&mut self, v: &Value) -> Result<(), CliError> {
        let text = serde_json::to_string_pretty(v)
            .map_err(|e| CliError::invalid("output", format!("cannot encode JSON ({e})")))?;
        self.line(text);
        Ok(())
    }

    /// Appends a table to stdout.
    pub(crate) fn table(&mut self, t: &Table) {
        self.stdout.push_str(&t.render());
    }

    /// A line for stderr (hints and warnings that are not the command's output).
    pub(crate) fn note(&mut self, s: impl Display) {
        self.notes.push(s.to_string());
    }

    /// Writes stdout, then the notes to stderr.
    pub(crate) fn flush(self) {
        let mut stdout = std::io::stdout().lock();
        // A reader that went away (`| head`) is not our failure.
        let _ = stdout
            .write_all(self.stdout.as_bytes())
            .and_then(|()| stdout.flush());
        let mut stderr = std::io::stderr().lock();
        for n in &self.notes {
            let _ = writeln!(stderr, "{n}");
        }
    }
}

/// Prints `error: <message>` on one line of stderr.
pub(crate) fn print_error(e: &CliError) {
    let _ = writeln!(std::io::stderr().lock(), "error: {e}");
}

/// A plain-text table: columns padded to their widest cell, two spaces apart, the last column
/// unpadded.
pub(crate) struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub(crate) fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are blank and extra cells are dropped.
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        let mut cells = cells;
        cells.resize(self.header.len(), String::new());
        self.rows.push(cells);
    }

    /// The table as text, one line per row after the header.
    pub(crate) fn render(&self) -> String {
        let n = self.header.len();
        let mut widths = vec![0usize; n];
        for r in std::iter::once(&self.header).chain(&self.rows) {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut s = String::new();
        for r in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (i, (c, w)) in r.iter().zip(&widths).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(c);
                if i + 1 < n {
                    line.extend(std::iter::repeat_n(
                        ' ',
                        w.saturating_sub(c.chars().count()),
                    ));
                }
            }
            s.push_str(line.trim_end());
            s.push('\n');
        }
        s
    }
}

/// `key: value` lines with the keys aligned.
pub(crate) fn fields(out: &mut Out, pairs: &[(&str, String)]) {
    let w = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    for (k, v) in pairs {
        out.line(format!("{:<w$} {v}", format!("{k}:")));
    }
}

/// An optional value as text, `-` when absent.
pub(crate) fn opt(v: Option<impl Display>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// A list as `a,b`, or `fallback` when empty.
pub(crate) fn list_or(items: &[String], fallback: &str) -> String {
    if items.is_empty() {
        fallback.to_owned()
    } else {
        items.join(",")
    }
}

/// `month`, `week`, ... as used after a slash.
pub(crate) fn per(p: Period) -> &'static str {
    match p {
        Period::Daily => "/day",
        Period::Weekly => "/week",
        Period::Monthly => "/month",
        Period::Total => " total",
    }
}

/// `$200/month`, with ` (soft)` for a soft budget.
pub(crate) fn budget_text(b: &Budget) -> String {
    let soft = if b.hard { "" } else { " (soft)" };
    format!("${}{}{soft}", b.limit, per(b.period))
}

/// An amount as a JSON number: its exact decimal form (integral dollars stay integers).
pub(crate) fn usd_json(u: Usd) -> Value {
    u.to_string()
        .parse::<serde_json::Number>()
        .map_or(Value::Null, Value::Number)
}

/// JSON text the library wrote, as a value to print.
pub(crate) fn json_value(text: &str) -> Result<Value, CliError> {
    serde_json::from_str(text)
        .map_err(|e| CliError::invalid("output", format!("cannot read JSON ({e})")))
}

/// An org as JSON.
pub(crate) fn org_json(o: &Org) -> Value {
    json!({
        "id": o.id.as_str(),
        "name": o.name,
        "status": o.status.as_str(),
        "created_at": o.created_at.to_string(),
        "config_version": o.config_version,
        "latest_version": o.latest_version,
        "owner_count": o.owner_count,
    })
}

/// A key as JSON: settings and status, never the secret.
pub(crate) fn key_json(k: &KeyInfo) -> Value {
    let s = &k.spec;
    let ts = |t: Option<Timestamp>| t.map(|t| t.to_string());
    json!({
        "id": k.id.to_string(),
        "org": k.org.as_str(),
        "name": s.name,
        "prefix": k.prefix,
        "status": key_status(k),
        "source": match k.source {
            orgstore::KeySource::Generated => "generated",
            orgstore::KeySource::Imported => "imported",
        },
        "rate_limit_rpm": s.rate_limit_rpm,
        "rate_limit_tpm": s.rate_limit_tpm,
        "allowed_models": s.allowed_models,
        "allowed_ips": s.allowed_ips,
        "budget": s.budget.map(|b| json!({
            "limit": usd_json(b.limit),
            "period": b.period.as_str(),
            "hard": b.hard,
        })),
        "expires_at": ts(s.expires_at),
        "metadata": s.metadata,
        "created_by": k.created_by,
        "created_at": k.created_at.to_string(),
        "revoked_at": ts(k.revoked_at),
        "rotated_at": ts(k.rotated_at),
        "version": k.version,
    })
}

/// `active`, `revoked` or `expired`.
pub(crate) fn key_status(k: &KeyInfo) -> &'static str {
    match k.status {
        KeyStatus::Revoked => "revoked",
        KeyStatus::Active if k.is_expired(Timestamp::now()) => "expired",
        KeyStatus::Active => "active",
    }
}

#[cfg(test)]
mod tests {
    use super::Table;

    #[test]
    fn table_aligns_columns_and_trims_the_last() {
        let mut t = Table::new(&["ID", "NAME"]);
        t.row(vec!["a".into(), "first".into()]);
        t.row(vec!["long-id".into(), String::new()]);
        assert_eq!(t.render(), "ID       NAME\na        first\nlong-id\n");
    }
}
