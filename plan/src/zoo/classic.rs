//! AlexNet, VGG, SqueezeNet 1.1 and GoogLeNet, as in torchvision.

use super::builder::{Builder, Conv, Pool};

/// torchvision `alexnet`.
pub fn alexnet(b: &mut Builder, x: &str) -> String {
    let x = b.conv("features.0", x, Conv::new(64, 11).stride(4).pad(2).bias());
    let x = b.relu("features.1", &x);
    let x = b.maxpool("features.2", &x, Pool::new(3).stride(2));
    let x = b.conv("features.3", &x, Conv::new(192, 5).pad(2).bias());
    let x = b.relu("features.4", &x);
    let x = b.maxpool("features.5", &x, Pool::new(3).stride(2));
    let x = b.conv("features.6", &x, Conv::new(384, 3).pad(1).bias());
    let x = b.relu("features.7", &x);
    let x = b.conv("features.8", &x, Conv::new(256, 3).pad(1).bias());
    let x = b.relu("features.9", &x);
    let x = b.conv("features.10", &x, Conv::new(256, 3).pad(1).bias());
    let x = b.relu("features.11", &x);
    let x = b.maxpool("features.12", &x, Pool::new(3).stride(2));
    let x = b.adaptive_avgpool("avgpool", &x, 6);
    let x = b.flatten("flatten", &x);
    // classifier.0 and .3 are Dropout (absent in an eval-mode export).
    let x = b.gemm("classifier.1", &x, 4096);
    let x = b.relu("classifier.2", &x);
    let x = b.gemm("classifier.4", &x, 4096);
    let x = b.relu("classifier.5", &x);
    b.gemm("classifier.6", &x, 1000)
}

/// torchvision `vgg16` (`cfg` D) or `vgg19` (`cfg` E), without batch norm. `cfg` lists conv
/// widths, 0 standing for a 2x2 max pool.
pub fn vgg(b: &mut Builder, x: &str, cfg: &[i64]) -> String {
    let mut x = x.to_string();
    let mut i = 0;
    for &c in cfg {
        if c == 0 {
            x = b.maxpool(&format!("features.{i}"), &x, Pool::new(2));
            i += 1;
        } else {
            x = b.conv(&format!("features.{i}"), &x, Conv::new(c, 3).pad(1).bias());
            x = b.relu(&format!("features.{}", i + 1), &x);
            i += 2;
        }
    }
    let x = b.adaptive_avgpool("avgpool", &x, 7);
    let x = b.flatten("flatten", &x);
    let x = b.gemm("classifier.0", &x, 4096);
    let x = b.relu("classifier.1", &x);
    let x = b.gemm("classifier.3", &x, 4096);
    let x = b.relu("classifier.4", &x);
    b.gemm("classifier.6", &x, 1000)
}

/// VGG16 configuration.
pub const VGG16: &[i64] = &[
    64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0,
];
/// VGG19 configuration.
pub const VGG19: &[i64] = &[
    64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0, 512, 512, 512, 512, 0,
];

fn fire(b: &mut Builder, p: &str, x: &str, squeeze: i64, e1: i64, e3: i64) -> String {
    let s = b.conv(&format!("{p}.squeeze"), x, Conv::new(squeeze, 1).bias());
    let s = b.relu(&format!("{p}.squeeze_activation"), &s);
    let a = b.conv(&format!("{p}.expand1x1"), &s, Conv::new(e1, 1).bias());
    let a = b.relu(&format!("{p}.expand1x1_activation"), &a);
    let c = b.conv(
        &format!("{p}.expand3x3"),
        &s,
        Conv::new(e3, 3).pad(1).bias(),
    );
    let c = b.relu(&format!("{p}.expand3x3_activation"), &c);
    b.concat(&format!("{p}.cat"), &[a, c])
}

/// torchvision `squeezenet1_1`.
pub fn squeezenet1_1(b: &mut Builder, x: &str) -> String {
    let x = b.conv("features.0", x, Conv::new(64, 3).stride(2).bias());
    let x = b.relu("features.1", &x);
    let x = b.maxpool("features.2", &x, Pool::new(3).stride(2).ceil());
    let x = fire(b, "features.3", &x, 16, 64, 64);
    let x = fire(b, "features.4", &x, 16, 64, 64);
    let x = b.maxpool("features.5", &x, Pool::new(3).stride(2).ceil());
    let x = fire(b, "features.6", &x, 32, 128, 128);
    let x = fire(b, "features.7", &x, 32, 128, 128);
    let x = b.maxpool("features.8", &x, Pool::new(3).stride(2).ceil());
    let x = fire(b, "features.9", &x, 48, 192, 192);
    let x = fire(b, "features.10", &x, 48, 192, 192);
    let x = fire(b, "features.11", &x, 64, 256, 256);
    let x = fire(b, "features.12", &x, 64, 256, 256);
    // classifier.0 is Dropout.
    let x = b.conv("classifier.1", &x, Conv::new(1000, 1).bias());
    let x = b.relu("classifier.2", &x);
    let x = b.global_avgpool("classifier.3", &x);
    b.flatten("flatten", &x)
}

/// GoogLeNet's BasicConv2d: conv (no bias) + BN (eps 1e-3) + ReLU.
fn basic_conv(b: &mut Builder, p: &str, x: &str, c: Conv) -> String {
    let x = b.conv(&format!("{p}.conv"), x, c);
    let x = b.batchnorm(&format!("{p}.bn"), &x, 1e-3);
    b.relu(&format!("{p}.relu"), &x)
}

/// torchvision `Inception` block (branch3 uses a 3x3 conv, as torchvision does).
#[allow(clippy::too_many_arguments)]
fn inception(
    b: &mut Builder,
    p: &str,
    x: &str,
    c1: i64,
    c3r: i64,
    c3: i64,
    c5r: i64,
    c5: i64,
    pool_proj: i64,
) -> String {
    let b1 = basic_conv(b, &format!("{p}.branch1"), x, Conv::new(c1, 1));
    let b2 = basic_conv(b, &format!("{p}.branch2.0"), x, Conv::new(c3r, 1));
    let b2 = basic_conv(b, &format!("{p}.branch2.1"), &b2, Conv::new(c3, 3).pad(1));
    let b3 = basic_conv(b, &format!("{p}.branch3.0"), x, Conv::new(c5r, 1));
    let b3 = basic_conv(b, &format!("{p}.branch3.1"), &b3, Conv::new(c5, 3).pad(1));
    let b4 = b.maxpool(
        &format!("{p}.branch4.0"),
        x,
        Pool::new(3).stride(1).pad(1).ceil(),
    );
    let b4 = basic_conv(b, &format!("{p}.branch4.1"), &b4, Conv::new(pool_proj, 1));
    b.concat(&format!("{p}.cat"), &[b1, b2, b3, b4])
}

/// torchvision `googlenet` without the auxiliary classifiers (eval mode) and without
/// `transform_input`.
pub fn googlenet(b: &mut Builder, x: &str) -> String {
    let x = basic_conv(b, "conv1", x, Conv::new(64, 7).stride(2).pad(3));
    let x = b.maxpool("maxpool1", &x, Pool::new(3).stride(2).ceil());
    let x = basic_conv(b, "conv2", &x, Conv::new(64, 1));
    let x = basic_conv(b, "conv3", &x, Conv::new(192, 3).pad(1));
    let x = b.maxpool("maxpool2", &x, Pool::new(3).stride(2).ceil());
    let x = inception(b, "inception3a", &x, 64, 96, 128, 16, 32, 32);
    let x = inception(b, "inception3b", &x, 128, 128, 192, 32, 96, 64);
    let x = b.maxpool("maxpool3", &x, Pool::new(3).stride(2).ceil());
    let x = inception(b, "inception4a", &x, 192, 96, 208, 16, 48, 64);
    let x = inception(b, "inception4b", &x, 160, 112, 224, 24, 64, 64);
    let x = inception(b, "inception4c", &x, 128, 128, 256, 24, 64, 64);
    let x = inception(b, "inception4d", &x, 112, 144, 288, 32, 64, 64);
    let x = inception(b, "inception4e", &x, 256, 160, 320, 32, 128, 128);
    let x = b.maxpool("maxpool4", &x, Pool::new(2).stride(2).ceil());
    let x = inception(b, "inception5a", &x, 256, 160, 320, 32, 128, 128);
    let x = inception(b, "inception5b", &x, 384, 192, 384, 48, 128, 128);
    let x = b.global_avgpool("avgpool", &x);
    let x = b.flatten("flatten", &x);
    // dropout: absent in eval mode.
    b.gemm("fc", &x, 1000)
}
