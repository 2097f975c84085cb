//! libtorch errors inside a model's forward pass, as values.
//!
//! The models call tch's panicking operations (`max_pool2d`, `conv2d`, ...): a shape libtorch
//! refuses (an input shorter than the network's pooling) or an allocation it cannot make then
//! unwinds out of the forward. [`catch`] turns that unwind into the libtorch message, and keeps
//! the panic hook quiet for it, so the user sees one clear error instead of a panic report.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// Set while this thread runs inside [`catch`]: its panics are reported as errors.
    static CATCHING: Cell<bool> = const { Cell::new(false) };
}

static QUIET_HOOK: Once = Once::new();

/// Runs `f`; a panic inside it (libtorch refusing an operation) becomes `Err` with libtorch's
/// own first line, e.g. "Given input size: (32x1x1). Calculated output size: (32x0x0). Output
/// size is too small".
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    QUIET_HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !CATCHING.with(Cell::get) {
                previous(info);
            }
        }));
    });
    let was = CATCHING.with(|c| c.replace(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(was));
    result.map_err(|payload| {
        let text = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("unknown error");
        torch_message(text)
    })
}

/// libtorch's message out of tch's `unwrap` panic text: `called `Result::unwrap()` on an `Err`
/// value: Torch("MESSAGE\nException raised from ...")` (Debug-escaped), first line only.
fn torch_message(panic_text: &str) -> String {
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
