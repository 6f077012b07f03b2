//! The float type training code is generic over: `f32` for training, `f64` for the
//! finite-difference gradient checks, with the same source for both.

use std::fmt::Debug;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

/// A real scalar (`f32` or `f64`): arithmetic, conversions and the elementary functions the
/// training losses and backward passes need. Every method is the inherent `std` one of the type.
pub trait Real:
    Copy
    + Debug
    + Default
    + PartialOrd
    + Send
    + Sync
    + Sum
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + 'static
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// Converts (exact for `f64`).
    fn from_f32(v: f32) -> Self;
    /// Converts (rounds to nearest for `f32`).
    fn from_f64(v: f64) -> Self;
    /// Converts a count (rounds to nearest).
    fn from_usize(v: usize) -> Self;
    /// Converts (exact for both types).
    fn to_f64(self) -> f64;
    /// Converts (rounds to nearest for `f64`).
    fn to_f32(self) -> f32;
    /// Square root.
    fn sqrt(self) -> Self;
    /// e^x.
    fn exp(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// x^e.
    fn powf(self, e: Self) -> Self;
    /// Hyperbolic tangent.
    fn tanh(self) -> Self;
    /// |x|.
    fn abs(self) -> Self;
    /// The larger (the other one if either is NaN, as `f32::max`).
    fn max(self, other: Self) -> Self;
    /// The smaller (as `f32::min`).
    fn min(self, other: Self) -> Self;
    /// Whether finite.
    fn is_finite(self) -> bool;
}

macro_rules! impl_real {
    ($t:ty) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            #[inline]
            fn from_f32(v: f32) -> Self {
                v as $t
            }
            #[inline]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline]
            fn from_usize(v: usize) -> Self {
                v as $t
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn to_f32(self) -> f32 {
                self as f32
            }
            #[inline]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline]
            fn powf(self, e: Self) -> Self {
                <$t>::powf(self, e)
            }
            #[inline]
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            #[inline]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline]
            fn max(self, other: Self) -> Self {
                <$t>::max(self, other)
            }
            #[inline]
            fn min(self, other: Self) -> Self {
                <$t>::min(self, other)
            }
            #[inline]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
        }
    };
}

impl_real!(f32);
impl_real!(f64);
