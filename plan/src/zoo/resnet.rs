//! ResNet v1.5 as in torchvision (stride in the 3x3 conv of the bottleneck).

use super::builder::{Builder, Conv, Pool};

const EPS: f32 = 1e-5;

fn downsample(b: &mut Builder, p: &str, x: &str, out: i64, stride: i64) -> String {
    let d = b.conv(
        &format!("{p}.downsample.0"),
        x,
        Conv::new(out, 1).stride(stride),
    );
    b.batchnorm(&format!("{p}.downsample.1"), &d, EPS)
}

fn basic_block(b: &mut Builder, p: &str, x: &str, planes: i64, stride: i64) -> String {
    let cin = b.channels(x);
    let y = b.conv(
        &format!("{p}.conv1"),
        x,
        Conv::new(planes, 3).stride(stride).pad(1),
    );
    let y = b.batchnorm(&format!("{p}.bn1"), &y, EPS);
    let y = b.relu(&format!("{p}.relu"), &y);
    let y = b.conv(&format!("{p}.conv2"), &y, Conv::new(planes, 3).pad(1));
    let y = b.batchnorm_residual(&format!("{p}.bn2"), &y, EPS);
    let identity = if stride != 1 || cin != planes {
        downsample(b, p, x, planes, stride)
    } else {
        x.to_string()
    };
    let y = b.add(&format!("{p}.add"), &y, &identity);
    b.relu(&format!("{p}.relu"), &y)
}

fn bottleneck(b: &mut Builder, p: &str, x: &str, planes: i64, stride: i64) -> String {
    let cin = b.channels(x);
    let out = planes * 4;
    let y = b.conv(&format!("{p}.conv1"), x, Conv::new(planes, 1));
    let y = b.batchnorm(&format!("{p}.bn1"), &y, EPS);
    let y = b.relu(&format!("{p}.relu"), &y);
    let y = b.conv(
        &format!("{p}.conv2"),
        &y,
        Conv::new(planes, 3).stride(stride).pad(1),
    );
    let y = b.batchnorm(&format!("{p}.bn2"), &y, EPS);
    let y = b.relu(&format!("{p}.relu"), &y);
    let y = b.conv(&format!("{p}.conv3"), &y, Conv::new(out, 1));
    let y = b.batchnorm_residual(&format!("{p}.bn3"), &y, EPS);
    let identity = if stride != 1 || cin != out {
        downsample(b, p, x, out, stride)
    } else {
        x.to_string()
    };
    let y = b.add(&format!("{p}.add"), &y, &identity);
    b.relu(&format!("{p}.relu"), &y)
}

/// torchvision `resnet18/34` (`bottleneck == false`) or `resnet50/101/152`, with `layers`
/// blocks per stage.
pub fn resnet(b: &mut Builder, x: &str, is_bottleneck: bool, layers: [usize; 4]) -> String {
    let x = b.conv("conv1", x, Conv::new(64, 7).stride(2).pad(3));
    let x = b.batchnorm("bn1", &x, EPS);
    let x = b.relu("relu", &x);
    let mut x = b.maxpool("maxpool", &x, Pool::new(3).stride(2).pad(1));
    for (i, (&n, planes)) in layers.iter().zip([64, 128, 256, 512]).enumerate() {
        for j in 0..n {
            let stride = if i > 0 && j == 0 { 2 } else { 1 };
            let p = format!("layer{}.{}", i + 1, j);
            x = if is_bottleneck {
                bottleneck(b, &p, &x, planes, stride)
            } else {
                basic_block(b, &p, &x, planes, stride)
            };
        }
    }
    let x = b.global_avgpool("avgpool", &x);
    let x = b.flatten("flatten", &x);
    b.gemm("fc", &x, 1000)
}
