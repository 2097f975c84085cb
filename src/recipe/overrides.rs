//! A profile's `set` overrides: applied to the recipe, and remembered so that an error they
//! cause points at the override's line (and names the profile), not at the overridden field.

use super::schema::{ProfileSpec, Recipe};
use super::{locate, Ctx};
use crate::error::{Error, Result};
use serde_norway::Value;

/// One applied `set` entry.
#[derive(Debug, Clone)]
pub(super) struct Override {
    profile: String,
    /// As the recipe writes it: `stages.student.training.epochs`.
    key: String,
    /// The field it replaced, sequence elements by index: `stages.1.training.epochs`.
    field: Vec<String>,
    line: Option<usize>,
}

impl Override {
    /// An error at `field` (of the resolved recipe) that this override caused.
    pub(super) fn err(&self, ctx: &Ctx, field: &str, msg: impl std::fmt::Display) -> Error {
        Error::input(
            ctx.path,
            self.line,
            Some(field),
            format!(
                "{msg} (set by profile `{}`'s `set`: `{}`)",
                self.profile, self.key
            ),
        )
    }
}

/// The override that caused an error at `field` of the resolved recipe: the one sharing the
/// longest leading part of the path (`training.epochs` for a warm-up no shorter than the epochs
/// it set). The recipe before overrides was valid, so one of them caused the error; none is
/// named when none touches the field's part of the recipe.
pub(super) fn cause<'a>(overrides: &'a [Override], field: &[&str]) -> Option<&'a Override> {
    let mut best: Option<(&Override, usize)> = None;
    for o in overrides {
        let shared = o
            .field
            .iter()
            .zip(field)
            .take_while(|(a, b)| a == *b)
            .count();
        if shared > 0 && best.is_none_or(|(_, most)| shared > most) {
            best = Some((o, shared));
        }
    }
    best.map(|(o, _)| o)
}

/// `r` with the profile's `set` overrides applied (dotted paths; a sequence element is
/// addressed by its `id`), and the overrides as applied.
pub(super) fn apply(
    ctx: &Ctx,
    r: &Recipe,
    profile: &str,
    p: &ProfileSpec,
) -> Result<(Recipe, Vec<Override>)> {
    let base = serde_norway::to_value(r).map_err(|e| Error::msg(e.to_string()))?;
    let mut v = base.clone();
    let mut applied = Vec::new();
    for (key, value) in &p.set {
        let field = set(ctx, &mut v, profile, key, value)?;
        applied.push(Override {
            profile: profile.to_string(),
            key: key.clone(),
            field,
            line: locate(ctx.text, &["profiles", profile, "set", key]),
        });
    }
    match serde_norway::from_value(v) {
        Ok(resolved) => Ok((resolved, applied)),
        Err(e) => {
            // The override without which the recipe reads: the value it set is the wrong kind.
            // Each try re-reads the recipe, so only for a profile's usual handful of overrides.
            let few = applied.len() <= 64;
            let culprit = applied.iter().take_while(|_| few).position(|skip| {
                let mut w = base.clone();
                let mut others = p.set.iter().filter(|(k, _)| **k != skip.key);
                others
                    .try_for_each(|(k, value)| set(ctx, &mut w, profile, k, value).map(|_| ()))
                    .is_ok()
                    && serde_norway::from_value::<Recipe>(w).is_ok()
            });
            Err(match culprit {
                Some(i) => {
                    let o = &applied[i];
                    o.err(ctx, &o.field.join("."), e)
                }
                None => ctx.err(
                    &["profiles", profile, "set"],
                    format!("after profile `{profile}`'s `set` overrides: {e}"),
                ),
            })
        }
    }
}

/// Replaces the value at `key` in `v`; returns the field it names, sequence elements by index.
fn set(ctx: &Ctx, v: &mut Value, profile: &str, key: &str, value: &Value) -> Result<Vec<String>> {
    let at = ["profiles", profile, "set", key];
    let mut node = v;
    let mut field = Vec::new();
    let segs: Vec<&str> = key.split('.').collect();
    for (n, seg) in segs.iter().enumerate() {
        let last = n + 1 == segs.len();
        node = match node {
            Value::Mapping(m) => {
                if !m.contains_key(*seg) {
                    if !last {
                        return Err(ctx.err(
                            &at,
                            format!("`{key}` does not name a recipe value (no `{seg}`)"),
                        ));
                    }
                    m.insert(Value::String(seg.to_string()), Value::Null);
                }
                field.push(seg.to_string());
                match m.get_mut(*seg) {
                    Some(child) => child,
                    None => return Err(ctx.err(&at, format!("`{key}`: no `{seg}`"))),
                }
            }
            Value::Sequence(items) => {
                let found = items
                    .iter_mut()
                    .enumerate()
                    .find(|(_, it)| it.get("id").and_then(Value::as_str) == Some(seg));
                match found {
                    Some((i, it)) => {
                        field.push(i.to_string());
                        it
                    }
                    None => {
                        return Err(ctx.err(&at, format!("`{key}`: no element with id `{seg}`")))
                    }
                }
            }
            _ => return Err(ctx.err(&at, format!("`{key}` does not name a recipe value"))),
        };
    }
    *node = value.clone();
    Ok(field)
}
