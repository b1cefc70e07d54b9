//! MobileNetV2 and EfficientNet-B0, as in torchvision.

use super::builder::{Builder, Conv};

/// torchvision `_make_divisible`.
fn make_divisible(v: f64, divisor: i64) -> i64 {
    let d = divisor as f64;
    let mut new_v = ((v + d / 2.0) as i64 / divisor * divisor).max(divisor);
    if (new_v as f64) < 0.9 * v {
        new_v += divisor;
    }
    new_v
}

/// Conv2dNormActivation with ReLU6 (MobileNetV2): `<p>.0` conv, `<p>.1` BN, `<p>.2` ReLU6.
fn conv_bn_relu6(b: &mut Builder, p: &str, x: &str, c: Conv) -> String {
    let x = b.conv(&format!("{p}.0"), x, c);
    let x = b.batchnorm(&format!("{p}.1"), &x, 1e-5);
    b.relu6(&format!("{p}.2"), &x)
}

/// torchvision `mobilenet_v2` (width 1.0).
pub fn mobilenet_v2(b: &mut Builder, x: &str) -> String {
    // t, c, n, s
    const SETTINGS: [(i64, i64, usize, i64); 7] = [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ];
    let mut x = conv_bn_relu6(b, "features.0", x, Conv::new(32, 3).stride(2).pad(1));
    let mut idx = 1;
    for (t, c, n, s) in SETTINGS {
        let out = make_divisible(c as f64, 8);
        for i in 0..n {
            let stride = if i == 0 { s } else { 1 };
            let p = format!("features.{idx}");
            let inp = b.channels(&x);
            let hidden = inp * t;
            let mut y = x.clone();
            let mut k = 0;
            if t != 1 {
                y = conv_bn_relu6(b, &format!("{p}.conv.0"), &y, Conv::new(hidden, 1));
                k = 1;
            }
            y = conv_bn_relu6(
                b,
                &format!("{p}.conv.{k}"),
                &y,
                Conv::new(hidden, 3).stride(stride).pad(1).groups(hidden),
            );
            y = b.conv(&format!("{p}.conv.{}", k + 1), &y, Conv::new(out, 1));
            y = b.batchnorm(&format!("{p}.conv.{}", k + 2), &y, 1e-5);
            x = if stride == 1 && inp == out {
                b.add(&format!("{p}.add"), &x, &y)
            } else {
                y
            };
            idx += 1;
        }
    }
    let x = conv_bn_relu6(b, &format!("features.{idx}"), &x, Conv::new(1280, 1));
    let x = b.global_avgpool("adaptive_avg_pool2d", &x);
    let x = b.flatten("flatten", &x);
    // classifier.0 is Dropout.
    b.gemm("classifier.1", &x, 1000)
}

/// Conv2dNormActivation with SiLU (EfficientNet): `<p>.0` conv, `<p>.1` BN, `<p>.2` SiLU
/// (or no activation).
fn conv_bn_silu(b: &mut Builder, p: &str, x: &str, c: Conv, act: bool) -> String {
    let x = b.conv(&format!("{p}.0"), x, c);
    let x = b.batchnorm(&format!("{p}.1"), &x, 1e-5);
    if act {
        b.silu(&format!("{p}.2"), &x)
    } else {
        x
    }
}

/// torchvision `efficientnet_b0` (stochastic depth has no parameters and is the identity
/// in eval mode).
pub fn efficientnet_b0(b: &mut Builder, x: &str) -> String {
    // expand_ratio, kernel, stride, in, out, layers
    const STAGES: [(i64, i64, i64, i64, i64, usize); 7] = [
        (1, 3, 1, 32, 16, 1),
        (6, 3, 2, 16, 24, 2),
        (6, 5, 2, 24, 40, 2),
        (6, 3, 2, 40, 80, 3),
        (6, 5, 1, 80, 112, 3),
        (6, 5, 2, 112, 192, 4),
        (6, 3, 1, 192, 320, 1),
    ];
    let mut x = conv_bn_silu(b, "features.0", x, Conv::new(32, 3).stride(2).pad(1), true);
    for (si, (e, k, s, _cin, cout, n)) in STAGES.into_iter().enumerate() {
        for j in 0..n {
            let p = format!("features.{}.{j}.block", si + 1);
            let inp = b.channels(&x);
            let stride = if j == 0 { s } else { 1 };
            let expanded = make_divisible((inp * e) as f64, 8);
            let mut y = x.clone();
            let mut m = 0;
            if expanded != inp {
                y = conv_bn_silu(b, &format!("{p}.0"), &y, Conv::new(expanded, 1), true);
                m = 1;
            }
            y = conv_bn_silu(
                b,
                &format!("{p}.{m}"),
                &y,
                Conv::new(expanded, k)
                    .stride(stride)
                    .pad((k - 1) / 2)
                    .groups(expanded),
                true,
            );
            // Squeeze-and-excitation.
            let se = format!("{p}.{}", m + 1);
            let squeeze = (inp / 4).max(1);
            let z = b.global_avgpool(&format!("{se}.avgpool"), &y);
            let z = b.conv(&format!("{se}.fc1"), &z, Conv::new(squeeze, 1).bias());
            let z = b.silu(&format!("{se}.activation"), &z);
            let z = b.conv(&format!("{se}.fc2"), &z, Conv::new(expanded, 1).bias());
            let z = b.sigmoid(&format!("{se}.scale_activation"), &z);
            y = b.mul(&format!("{se}.mul"), &z, &y);
            y = conv_bn_silu(b, &format!("{p}.{}", m + 2), &y, Conv::new(cout, 1), false);
            x = if stride == 1 && inp == cout {
                let name = p.strip_suffix(".block").unwrap_or(&p).to_string();
                b.add(&format!("{name}.add"), &y, &x)
            } else {
                y
            };
        }
    }
    let x = conv_bn_silu(b, "features.8", &x, Conv::new(1280, 1), true);
    let x = b.global_avgpool("avgpool", &x);
    let x = b.flatten("flatten", &x);
    // classifier.0 is Dropout.
    b.gemm("classifier.1", &x, 1000)
}
