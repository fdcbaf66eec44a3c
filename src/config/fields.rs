//! Reading typed fields out of a JSON object with errors that name the field and the fix.

use serde_json::{Map, Value};

use crate::error::Error;

/// One JSON object being read, with its dotted path for messages.
pub(super) struct Fields<'a> {
    pub path: &'a str,
    pub obj: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    /// Checks that `v` is an object whose keys are all in `valid`.
    pub fn new(path: &'a str, v: &'a Value, valid: &[&str]) -> Result<Self, Error> {
        let obj = v.as_object().ok_or_else(|| {
            Error::invalid(
                path.to_owned(),
                "must be a JSON object such as {\"enabled\": true}",
            )
        })?;
        if let Some(bad) = obj.keys().find(|k| !valid.contains(&k.as_str())) {
            return Err(Error::invalid(
                format!("{path}.{bad}"),
                format!("unknown field; valid fields are {}", valid.join(", ")),
            ));
        }
        Ok(Self { path, obj })
    }

    fn field(&self, name: &str) -> String {
        format!("{}.{name}", self.path)
    }

    pub fn bool(&self, name: &str, default: bool) -> Result<bool, Error> {
        match self.obj.get(name) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(Error::invalid(self.field(name), "must be true or false")),
        }
    }

    /// A positive integer up to `max`.
    pub fn positive(&self, name: &str, max: u64) -> Result<Option<u64>, Error> {
        match self.obj.get(name) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if (1..=max).contains(&n) => Ok(Some(n)),
                _ => Err(Error::invalid(
                    self.field(name),
                    format!("must be a whole number from 1 to {max}; omit it for no limit"),
                )),
            },
        }
    }

    pub fn str(&self, name: &str) -> Result<Option<&'a str>, Error> {
        match self.obj.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Error::invalid(self.field(name), "must be a string")),
        }
    }

    pub fn strings(&self, name: &str) -> Result<Option<Vec<&'a str>>, Error> {
        match self.obj.get(name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_str().ok_or_else(|| {
                        Error::invalid(self.field(name), "must be a list of strings")
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(Error::invalid(
                self.field(name),
                "must be a list of strings",
            )),
        }
    }

    pub fn number(&self, name: &str) -> Result<Option<&'a serde_json::Number>, Error> {
        match self.obj.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(Some(n)),
            Some(_) => Err(Error::invalid(self.field(name), "must be a number")),
        }
    }

    pub fn err(&self, name: &str, fix: &str) -> Error {
        Error::invalid(self.field(name), fix.to_owned())
    }
}

/// Renames `alias` keys of `obj` to their canonical names; both present is an error.
pub(super) fn apply_aliases(
    path: &str,
    obj: &mut Map<String, Value>,
    aliases: &[(&str, &str)],
) -> Result<(), Error> {
    for (alias, canonical) in aliases {
        if let Some(v) = obj.remove(*alias) {
            if obj.contains_key(*canonical) {
                return Err(Error::invalid(
                    format!("{path}.{alias}"),
                    format!("`{alias}` is another name for `{canonical}`; give only one of them"),
                ));
            }
            obj.insert((*canonical).to_owned(), v);
        }
    }
    Ok(())
}
