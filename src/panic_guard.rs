//! Refusals that libraries signal by panicking, as values.
//!
//! The models call tch's panicking operations (`max_pool2d`, `conv2d`, ...): a shape libtorch
//! refuses (an input shorter than the network's pooling) unwinds out of the forward. polars'
//! parquet decoder panics on some malformed files instead of returning an error. [`catch`]
//! turns such an unwind into its message, and keeps the panic hook quiet for it, so the user
//! sees one clear error naming the file instead of a panic report.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

/// How many [`catch`] calls are running. A library may panic on one of its worker threads (polars
/// decodes on rayon's); the payload reaches the caller, so the hook stays quiet on every thread
/// while any catch runs.
static CATCHING: AtomicUsize = AtomicUsize::new(0);

static QUIET_HOOK: Once = Once::new();

/// Runs `f`; a panic inside it becomes `Err` with the panic's first line (for libtorch, its own
/// message, e.g. "Given input size: (32x1x1). Calculated output size: (32x0x0). Output size is
/// too small"). Only for code whose panics are refusals of its input: the caller turns the
/// message into an error naming that input.
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    QUIET_HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if CATCHING.load(Ordering::SeqCst) == 0 {
                previous(info);
            }
        }));
    });
    CATCHING.fetch_add(1, Ordering::SeqCst);
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    CATCHING.fetch_sub(1, Ordering::SeqCst);
    result.map_err(|payload| {
        let text = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("unknown error");
        first_line(text)
    })
}

/// The first line of a panic's text; for tch's `unwrap` of a libtorch error (`called
/// `Result::unwrap()` on an `Err` value: Torch("MESSAGE\nException raised from ...")`,
/// Debug-escaped), libtorch's MESSAGE.
fn first_line(panic_text: &str) -> String {
    let Some(start) = panic_text.find("Torch(\"") else {
        return panic_text.lines().next().unwrap_or(panic_text).to_string();
    };
    let body = &panic_text[start + "Torch(\"".len()..];
    let end = [body.find("\\n"), body.find("\")")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(body.len());
    body[..end].trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    #[test]
    fn a_refused_shape_becomes_libtorchs_first_line() {
        let x = Tensor::zeros([1, 1, 1, 1], (Kind::Float, tch::Device::Cpu));
        let err = catch(|| x.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false)).unwrap_err();
        assert!(err.contains("Output size is too small"), "{err}");
        assert!(!err.contains("Exception raised"), "{err}");
    }

    #[test]
    fn a_value_passes_through() {
        assert_eq!(catch(|| 3), Ok(3));
    }
}
