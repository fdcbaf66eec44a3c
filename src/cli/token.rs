//! `orgstore token ...`: bearer tokens for the admin API over TCP, in `<db>.tokens`.

use clap::Subcommand;
use orgstore::server::{TokenHolder, TokenInfo, Tokens};
use orgstore::{Email, Timestamp};
use serde_json::Value;

use super::output::{Out, Table, fields, opt};
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
    ctx.local_only()?;
    if !matches!(ctx.actor, orgstore::Actor::Operator) {
        return Err(CliError::invalid(
            "--as",
            "tokens are managed by the operator (the holder of the store file); drop --as",
        ));
    }
    let tokens = Tokens::beside(&ctx.db);
    match cmd {
        TokenCmd::Create {
            operator,
            email,
            expires,
        } => {
            let who = match (operator, email) {
                (_, Some(e)) => TokenHolder::Member(
                    Email::parse(&e).map_err(|e| CliError::for_flag("--email", &e))?,
                ),
                _ => TokenHolder::Operator,
            };
            let expires = expires
                .map(|t| Timestamp::parse(&t).map_err(|e| CliError::for_flag("--expires", &e)))
                .transpose()?;
            let (info, secret) = tokens.create(who, expires)?;
            if ctx.json {
                let mut v = info.to_json();
                v["token"] = Value::String(secret);
                return out.json(&v);
            }
            fields(
                out,
                &[
                    ("id", info.id.clone()),
                    ("holder", info.holder_name()),
                    ("expires", opt(info.expires_at)),
                    ("token", secret),
                ],
            );
            out.note("store the token now: it is shown only this once");
            Ok(())
        }
        TokenCmd::List => {
            let list = tokens.list()?;
            if ctx.json {
                return out.json(&Value::Array(list.iter().map(TokenInfo::to_json).collect()));
            }
            let mut t = Table::new(&["ID", "HOLDER", "STATUS", "CREATED", "EXPIRES"]);
            for k in &list {
                t.row(vec![
                    k.id.clone(),
                    k.holder_name(),
                    k.status().into(),
                    k.created_at.to_string(),
                    opt(k.expires_at),
                ]);
            }
            out.table(&t);
            Ok(())
        }
        TokenCmd::Revoke { token_id } => {
            let info = tokens.revoke(&token_id)?;
            if ctx.json {
                return out.json(&info.to_json());
            }
            out.line(format!("revoked {} ({})", info.id, info.holder_name()));
            Ok(())
        }
    }
}
