//! Runtime dispatch for hot integer kernels: the same Rust body compiled twice, once
//! for the x86-64 baseline (SSE2) and once with AVX2, picked per call from what the CPU
//! has. The loops are written to auto-vectorise, so no intrinsics appear anywhere and
//! both copies give bit-identical results.

/// `multiversion! { pub fn name(args) -> T { body } }` defines `name` as above.
macro_rules! multiversion {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                fn avx2($($arg: $ty),*) $(-> $ret)? $body
                if std::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has the one feature `avx2` was compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            #[allow(clippy::needless_return)]
            fn baseline($($arg: $ty),*) $(-> $ret)? $body
            baseline($($arg),*)
        }
    };
}

pub(crate) use multiversion;
