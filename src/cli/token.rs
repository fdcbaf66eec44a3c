//! `orgstore token ...`: bearer tokens for the admin API over TCP, in `<db>.tokens`.

use clap::Subcommand;
use orgstore::server::{TokenHolder, TokenInfo, Tokens};
use orgstore::{Email, Timestamp};
use serde_json::{Value, json};

use super::output::{Out, Table, fields};
use super::{CliError, Ctx};

#[derive(Subcommand)]
pub(crate) enum TokenCmd {
    /// Make a token; it is printed once, here, and never again.
    #[command(group = clap::ArgGroup::new("holder").required(true).args(["operator", "email"]))]
    Create {
        /// An operator token (may do everything, and act as a member).
        #[arg(long)]
        operator: bool,
        /// A member access token bound to this email (their role comes from the store).
        #[arg(long, value_name = "EMAIL")]
        email: Option<String>,
        /// When the token stops working (RFC 3339).
        #[arg(long, value_name = "RFC3339")]
        expires: Option<String>,
    },
    /// List the tokens (never their secrets).
    List,
    /// Revoke a token: every later request with it is refused.
    Revoke {
        /// The token id (tok_ and 16 hex digits).
        token_id: String,
    },
}

pub(crate) fn run(ctx: &Ctx, cmd: TokenCmd, out: &mut Out) -> Result<(), CliError> {
    // With `--remote`, the server's token routes: its rules for a member token apply.
    let remote = ctx.tcp_remote();
    if remote.is_none() && !matches!(ctx.actor, orgstore::Actor::Operator) {
        return Err(CliError::invalid(
            "--as",
            "tokens are managed by the operator (the holder of the store file); drop --as",
        ));
    }
    let tokens = Tokens::beside(ctx.db());
    let answer = match cmd {
        TokenCmd::Create {
            operator,
            email,
            expires,
        } => match remote {
            Some(r) => {
                let body = json!({ "operator": operator, "email": email, "expires_at": expires });
                Answer::Made(r.call("POST", "/v1/tokens", Some(&body))?)
            }
            None => {
                let who = match email {
                    Some(e) => TokenHolder::Member(
                        Email::parse(&e).map_err(|e| CliError::for_flag("--email", &e))?,
                    ),
                    None => TokenHolder::Operator,
                };
                let expires = expires
                    .map(|t| Timestamp::parse(&t).map_err(|e| CliError::for_flag("--expires", &e)))
                    .transpose()?;
                let (info, secret) = tokens.create(who, expires)?;
                let mut v = info.to_json();
                v["token"] = Value::String(secret);
                Answer::Made(v)
            }
        },
        TokenCmd::List => Answer::List(match remote {
            Some(r) => r.get("GET", "/v1/tokens", None)?,
            None => tokens.list()?.iter().map(TokenInfo::to_json).collect(),
        }),
        TokenCmd::Revoke { token_id } => Answer::Revoked(match remote {
            Some(r) => {
                let path = format!("/v1/tokens/{}", super::remote::segment(&token_id));
                r.call("DELETE", &path, None)?
            }
            None => tokens.revoke(&token_id)?.to_json(),
        }),
    };
    print(ctx, &answer, out)
}

/// What a token command answers, as the admin API does: a token made (with its secret), the
/// list, or a token revoked.
enum Answer {
    Made(Value),
    List(Vec<Value>),
    Revoked(Value),
}

fn print(ctx: &Ctx, answer: &Answer, out: &mut Out) -> Result<(), CliError> {
    let text = |v: &Value, k: &str| v[k].as_str().unwrap_or("-").to_owned();
    match answer {
        Answer::Made(v) => {
            if ctx.json {
                return out.json(v);
            }
            fields(
                out,
                &[
                    ("id", text(v, "id")),
                    ("holder", text(v, "holder")),
                    ("expires", text(v, "expires_at")),
                    ("token", text(v, "token")),
                ],
            );
            out.note("store the token now: it is shown only this once");
        }
        Answer::List(list) => {
            if ctx.json {
                return out.json(&Value::Array(list.clone()));
            }
            let mut t = Table::new(&["ID", "HOLDER", "STATUS", "CREATED", "EXPIRES"]);
            for k in list {
                t.row(vec![
                    text(k, "id"),
                    text(k, "holder"),
                    text(k, "status"),
                    text(k, "created_at"),
                    text(k, "expires_at"),
                ]);
            }
            out.table(&t);
        }
        Answer::Revoked(v) => {
            if ctx.json {
                return out.json(v);
            }
            out.line(format!("revoked {} ({})", text(v, "id"), text(v, "holder")));
        }
    }
    Ok(())
}
