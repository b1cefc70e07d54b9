//! YOLOv3-tiny from darknet's `yolov3-tiny.cfg` (80 classes, 3 anchors per head).
//!
//! Layer `i` of the cfg is named `layer<i>`: a convolutional layer becomes
//! `layer<i>.conv` (+ `layer<i>.bn` and `layer<i>.leaky`), the others `layer<i>.maxpool`,
//! `layer<i>.upsample` and `layer<i>.route` (the concatenating route). The two `[yolo]`
//! layers (16 and 23) only decode boxes and have no parameters: the graph outputs are the
//! raw head convolutions, `output0` (stride 32) and `output1` (stride 16), 255 channels each.

use super::builder::{Builder, Conv, Pool};

/// A darknet `[convolutional]` layer: `bn` = batch_normalize=1 with leaky activation (no
/// conv bias); otherwise a linear conv with bias.
fn conv(b: &mut Builder, i: usize, x: &str, out: i64, k: i64, bn: bool) -> String {
    let c = Conv::new(out, k).pad((k - 1) / 2);
    if bn {
        let y = b.conv(&format!("layer{i}.conv"), x, c);
        let y = b.batchnorm(&format!("layer{i}.bn"), &y, 1e-5);
        b.leaky_relu(&format!("layer{i}.leaky"), &y, 0.1)
    } else {
        b.conv(&format!("layer{i}.conv"), x, c.bias())
    }
}

/// YOLOv3-tiny; returns the two head outputs (stride 32, stride 16).
pub fn yolov3_tiny(b: &mut Builder, x: &str) -> (String, String) {
    let mut x = x.to_string();
    let mut layer8 = String::new();
    for (i, c) in [16, 32, 64, 128, 256].into_iter().enumerate() {
        x = conv(b, 2 * i, &x, c, 3, true);
        if i == 4 {
            layer8 = x.clone();
        }
        x = b.maxpool(&format!("layer{}.maxpool", 2 * i + 1), &x, Pool::new(2));
    }
    let x = conv(b, 10, &x, 512, 3, true);
    // size=2 stride=1: darknet pads one row/column at the end, keeping the size.
    let x = b.maxpool(
        "layer11.maxpool",
        &x,
        Pool::new(2).stride(1).pads([0, 0, 1, 1]),
    );
    let x = conv(b, 12, &x, 1024, 3, true);
    let l13 = conv(b, 13, &x, 256, 1, true);
    let x = conv(b, 14, &l13, 512, 3, true);
    let out0 = conv(b, 15, &x, 255, 1, false);
    // 16: yolo; 17: route -4 (layer 13).
    let x = conv(b, 18, &l13, 128, 1, true);
    let x = b.resize_nearest("layer19.upsample", &x, 2.0);
    let x = b.concat("layer20.route", &[x, layer8]);
    let x = conv(b, 21, &x, 256, 3, true);
    let out1 = conv(b, 22, &x, 255, 1, false);
    (out0, out1)
}
