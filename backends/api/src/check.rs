//! Checks every engine makes the same way: the names of the inputs a host gives against the
//! model's, and how far an engine's output is from a reference.

use crate::TensorView;

/// The model's inputs, comma-separated (for error messages).
fn input_list<S>(model: &[(String, S)]) -> String {
    model
        .iter()
        .map(|i| i.0.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The spec (shape, type, ...) of the model input called `name`, among the model's
/// `(name, spec)` inputs; the error names the model's inputs.
pub fn model_input<'m, S>(model: &'m [(String, S)], name: &str) -> Result<&'m S, String> {
    model
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, s)| s)
        .ok_or_else(|| {
            format!(
                "the model has no input '{name}' (inputs: {})",
                input_list(model)
            )
        })
}

/// Every model input is among `given`; the error names the first that is not (model order).
pub fn all_inputs_given<S>(model: &[(String, S)], given: &[TensorView<'_>]) -> Result<(), String> {
    match model
        .iter()
        .find(|(n, _)| !given.iter().any(|t| t.name == n))
    {
        Some((n, _)) => Err(format!("input '{n}' was not given")),
        None => Ok(()),
    }
}

/// The names of `given` match the model's inputs: each is a model input ([`model_input`])
/// and every model input is given ([`all_inputs_given`]), checked in that order.
pub fn check_input_names<S>(model: &[(String, S)], given: &[TensorView<'_>]) -> Result<(), String> {
    for t in given {
        model_input(model, t.name)?;
    }
    all_inputs_given(model, given)
}

/// Relative error of `got` against `want`: `max |got - want| / max |want|` (the largest
/// deviation relative to the output's scale; element-wise ratios blow up near zero; the
/// plain largest deviation when `want` is all zeros). Infinite when the lengths differ or a
/// value is NaN. The measure of `split --verify`, of `hil`'s output check and of the backend
/// conformance suite.
pub fn rel_error(want: &[f32], got: &[f32]) -> f64 {
    if want.len() != got.len() {
        return f64::INFINITY;
    }
    let (mut scale, mut diff) = (0f64, 0f64);
    for (&w, &g) in want.iter().zip(got) {
        scale = scale.max((w as f64).abs());
        let d = (w as f64 - g as f64).abs();
        if d.is_nan() {
            return f64::INFINITY;
        }
        diff = diff.max(d);
    }
    if scale == 0.0 {
        diff
    } else {
        diff / scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;

    fn view(name: &str) -> TensorView<'_> {
        TensorView {
            name,
            dtype: DType::F32,
            shape: &[],
            data: &[],
        }
    }

    #[test]
    fn input_names_are_checked_unknown_first_then_missing() {
        let model = vec![("x".to_string(), 1), ("y".to_string(), 2)];
        assert_eq!(model_input(&model, "y"), Ok(&2));
        assert_eq!(
            check_input_names(&model, &[view("x"), view("z")]),
            Err("the model has no input 'z' (inputs: x, y)".into())
        );
        assert_eq!(
            check_input_names(&model, &[view("y")]),
            Err("input 'x' was not given".into())
        );
        assert_eq!(check_input_names(&model, &[view("y"), view("x")]), Ok(()));
    }

    #[test]
    fn rel_error_is_relative_to_the_scale_and_infinite_on_mismatch() {
        assert_eq!(rel_error(&[2.0, -4.0], &[2.0, -3.0]), 0.25);
        assert_eq!(rel_error(&[0.0, 0.0], &[0.0, 0.5]), 0.5);
        assert!(rel_error(&[1.0], &[1.0, 2.0]).is_infinite());
        assert!(rel_error(&[1.0], &[f32::NAN]).is_infinite());
        assert_eq!(rel_error(&[], &[]), 0.0);
    }
}

/// An element type a tensor crosses the ABI in: plain old data, no padding.
pub trait Element: Copy + private::Sealed {}
impl Element for f32 {}
impl Element for i64 {}

mod private {
    /// Only the element types above may be viewed as bytes.
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for i64 {}
}

/// The bytes of an element slice (native byte order), without copying: how a plugin lends
/// an engine's output tensor to the host.
pub fn element_bytes<T: Element>(data: &[T]) -> &[u8] {
    // SAFETY: `Element` is sealed to f32 and i64, which have no padding and every bit
    // pattern of their bytes is a valid u8; the view has the slice's exact byte length and
    // borrows it, so it cannot outlive or alias a mutable use of `data`.
    unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<u8>(), std::mem::size_of_val(data)) }
}
