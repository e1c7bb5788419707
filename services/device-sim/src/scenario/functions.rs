//! The template functions that draw from the device's own random number generator (`random`,
//! `random_int`, `choice`, `uuid`), and the generator's handle in the render context.

use std::sync::{Mutex, PoisonError};

use minijinja::value::Object;
use minijinja::{ErrorKind, State, Value};

use super::RNG_KEY;

/// A device's generator, reachable from the functions through the render context.
#[derive(Debug)]
pub(super) struct DeviceRng(pub(super) Mutex<fastrand::Rng>);

impl Object for DeviceRng {}

/// Runs `f` with the generator of the device being rendered.
fn with_rng<T>(
    state: &State<'_, '_>,
    f: impl FnOnce(&mut fastrand::Rng) -> T,
) -> Result<T, minijinja::Error> {
    let handle = state
        .lookup(RNG_KEY)
        .and_then(|value| value.downcast_object::<DeviceRng>())
        .ok_or_else(|| {
            minijinja::Error::new(ErrorKind::InvalidOperation, "no device generator in this context")
        })?;
    let mut rng = handle.0.lock().unwrap_or_else(PoisonError::into_inner);
    Ok(f(&mut rng))
}

fn invalid(message: String) -> minijinja::Error {
    minijinja::Error::new(ErrorKind::InvalidOperation, message)
}

/// `random(min, max)`: a float in [min, max).
pub(super) fn random(state: &State<'_, '_>, min: f64, max: f64) -> Result<f64, minijinja::Error> {
    if !(min.is_finite() && max.is_finite() && min <= max) {
        return Err(invalid(format!(
            "random({min}, {max}): min and max must be finite numbers with min <= max"
        )));
    }
    let value = with_rng(state, |rng| min + rng.f64() * (max - min))?;
    // Rounding can reach max itself; the range excludes it.
    Ok(if value >= max && min < max {
        max.next_down()
    } else {
        value
    })
}

/// `random_int(min, max)`: an integer in [min, max].
pub(super) fn random_int(state: &State<'_, '_>, min: i64, max: i64) -> Result<i64, minijinja::Error> {
    if min > max {
        return Err(invalid(format!(
            "random_int({min}, {max}): min is greater than max"
        )));
    }
    with_rng(state, |rng| rng.i64(min..=max))
}

/// `choice(list)` and `choice(list, weights)`: one item of the list.
pub(super) fn choice(
    state: &State<'_, '_>,
    items: Value,
    weights: Option<Vec<f64>>,
) -> Result<Value, minijinja::Error> {
    if items.kind() != minijinja::value::ValueKind::Seq {
        return Err(invalid(format!("choice: expected a list, got {}", items.kind())));
    }
    let len = items.len().unwrap_or(0);
    if len == 0 {
        return Err(invalid("choice: the list is empty".to_owned()));
    }
    let index = match weights {
        None => with_rng(state, |rng| rng.usize(..len))?,
        Some(weights) => {
            if weights.len() != len {
                return Err(invalid(format!(
                    "choice: {len} items but {} weights",
                    weights.len()
                )));
            }
            if weights
                .iter()
                .any(|weight| !(weight.is_finite() && *weight >= 0.0))
            {
                return Err(invalid(
                    "choice: weights must be finite and not negative".to_owned(),
                ));
            }
            let total: f64 = weights.iter().sum();
            if total <= 0.0 {
                return Err(invalid("choice: the weights add up to 0".to_owned()));
            }
            let mut point = with_rng(state, |rng| rng.f64())? * total;
            // The last item with weight, in case rounding carries `point` past the end.
            let mut index = weights.iter().rposition(|weight| *weight > 0.0).unwrap_or(0);
            for (i, weight) in weights.iter().enumerate() {
                if *weight > 0.0 && point < *weight {
                    index = i;
                    break;
                }
                point -= weight;
            }
            index
        }
    };
    items.get_item_by_index(index)
}

/// `uuid()`: 128 random bits in UUID version 4 format.
pub(super) fn uuid(state: &State<'_, '_>) -> Result<String, minijinja::Error> {
    let bits = with_rng(state, |rng| rng.u128(..))?;
    // Version 4 in bits 76-79, variant 0b10 in bits 62-63.
    let bits = (bits & !(0xF << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
    Ok(format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        bits >> 96,
        (bits >> 80) & 0xFFFF,
        (bits >> 64) & 0xFFFF,
        (bits >> 48) & 0xFFFF,
        bits & 0xFFFF_FFFF_FFFF
    ))
}
