//! Run-time choice of vector instructions for the CPU kernels.
//!
//! Release builds target baseline x86-64 (SSE2), so loops the compiler vectorises use
//! 128-bit registers. Where a loop is hot, [`avx2_variant!`] compiles its body a second
//! time with AVX2 and FMA enabled and picks that copy when the CPU has them (checked
//! once per process). The arithmetic is the same in both copies: no fused multiply-add
//! is introduced unless the body asks for one with `mul_add`.

/// Whether this CPU has AVX2 and FMA (x86-64 only; checked once).
pub(crate) fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static DETECTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *DETECTED.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `avx2_variant!(fn name => body(arg: Type, ...))` defines `fn name(args)` that calls
/// the `#[inline(always)]` function `body`, compiled for AVX2 and FMA where the CPU has
/// them and for the baseline target elsewhere. `fn name<T: Bound, ...> => body(...)`
/// does the same for a generic body (each bound a single trait path).
macro_rules! avx2_variant {
    ($(#[$doc:meta])* fn $name:ident => $body:ident ( $($arg:ident : $ty:ty),* $(,)? )) => {
        $crate::simd::avx2_variant!($(#[$doc])* fn $name<> => $body($($arg: $ty),*));
    };
    ($(#[$doc:meta])* fn $name:ident < $($g:ident : $bound:path),* > => $body:ident ( $($arg:ident : $ty:ty),* $(,)? )) => {
        $(#[$doc])*
        fn $name<$($g: $bound),*>($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            if $crate::simd::has_avx2_fma() {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn fast<$($g: $bound),*>($($arg: $ty),*) {
                    $body($($arg),*)
                }
                // SAFETY: the CPU has AVX2 and FMA, checked just above.
                return unsafe { fast($($arg),*) };
            }
            $body($($arg),*)
        }
    };
}
pub(crate) use avx2_variant;
