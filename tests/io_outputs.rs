//! Overlays and output files through the public API: sizes, blending, colour bar, outline, PNG.

use tokenclip::io::image::{decode_image, ImageLimits, RgbImage};
use tokenclip::io::overlay::{
    colormap_jet, encode_png, outline, render_overlay, resize_map, OverlayOptions, OUTLINE_COLOUR,
};
use tokenclip::InputError;

fn grey(width: u32, height: u32, v: u8) -> RgbImage {
    RgbImage::from_rgb(width, height, vec![v; (width * height * 3) as usize]).unwrap()
}

fn pixel(img: &RgbImage, x: usize, y: usize) -> [u8; 3] {
    let i = (y * img.width as usize + x) * 3;
    [img.data[i], img.data[i + 1], img.data[i + 2]]
}

fn no_bar() -> OverlayOptions {
    OverlayOptions::default().with_colour_bar(false)
}

#[test]
fn overlay_without_bar_keeps_the_size_with_bar_is_wider() {
    let img = grey(40, 30, 100);
    let map = vec![0.5; 8 * 6];
    let plain = render_overlay(&img, &map, 8, 6, &no_bar()).unwrap();
    assert_eq!((plain.width, plain.height, plain.data.len()), (40, 30, 40 * 30 * 3));
    let barred = render_overlay(&img, &map, 8, 6, &OverlayOptions::default()).unwrap();
    assert!(barred.width >= 40 + 24, "{}", barred.width);
    assert_eq!(barred.height, 30);
    assert!(barred.is_consistent() && barred.alpha.is_none());
    // The left part is the overlay itself, row by row.
    for y in 0..30 {
        assert_eq!(barred.data[y * barred.width as usize * 3..][..40 * 3], plain.data[y * 40 * 3..][..40 * 3]);
    }
}

#[test]
fn colour_bar_runs_from_top_to_bottom_colour_with_dark_labels() {
    let img = grey(300, 300, 100);
    let out = render_overlay(&img, &[0.0], 1, 1, &OverlayOptions::default()).unwrap();
    // Column of the bar: a few pixels right of the image and its gap.
    let x = (300..out.width as usize).find(|&x| pixel(&out, x, 150) != [255, 255, 255]).unwrap() + 2;
    assert_eq!(pixel(&out, x, 0), colormap_jet(1.0));
    assert_eq!(pixel(&out, x, 299), colormap_jet(0.0));
    // Labels: some black pixels right of the bar near the top, the middle and the bottom.
    let black_in = |rows: std::ops::Range<usize>| {
        rows.into_iter().any(|y| (x + 24..out.width as usize).any(|x| pixel(&out, x, y) == [0, 0, 0]))
    };
    assert!(black_in(0..7) && black_in(146..154) && black_in(293..300));
}

#[test]
fn constant_map_gives_a_uniform_blend() {
    let img = grey(17, 11, 200);
    let out = render_overlay(&img, &[0.75; 5 * 3], 5, 3, &no_bar().with_opacity(0.25)).unwrap();
    let c = colormap_jet(0.75);
    let want: Vec<u8> = c.iter().map(|&c| (200.0 * 0.75 + f32::from(c) * 0.25_f32).round() as u8).collect();
    assert!(out.data.chunks_exact(3).all(|p| p == want.as_slice()), "{:?}", &out.data[..3]);
}

#[test]
fn range_and_opacity_extremes() {
    let img = grey(4, 4, 10);
    let map = vec![5.0; 16];
    let full = render_overlay(&img, &map, 4, 4, &no_bar().with_opacity(1.0).with_range(0.0, 10.0)).unwrap();
    assert_eq!(pixel(&full, 3, 3), colormap_jet(0.5));
    let none = render_overlay(&img, &map, 4, 4, &no_bar().with_opacity(0.0)).unwrap();
    assert_eq!(none.data, img.data);
}

#[test]
fn bad_sizes_and_options_are_errors() {
    let img = grey(4, 4, 0);
    let o = no_bar();
    let bad = |r: Result<RgbImage, InputError>| assert!(matches!(r, Err(InputError::Invalid { .. })), "{r:?}");
    bad(render_overlay(&img, &[0.0; 15], 4, 4, &o));
    bad(render_overlay(&img, &[], 0, 0, &o));
    bad(render_overlay(&img, &[0.0; 4], 0, 4, &o));
    bad(render_overlay(&img, &[0.0; 4], usize::MAX, 2, &o));
    bad(render_overlay(&RgbImage { width: 0, height: 0, data: vec![], alpha: None }, &[0.0], 1, 1, &o));
    bad(render_overlay(&RgbImage { width: 2, height: 2, data: vec![0; 5], alpha: None }, &[0.0], 1, 1, &o));
    bad(render_overlay(&img, &[0.0], 1, 1, &o.with_opacity(1.5)));
    bad(render_overlay(&img, &[0.0], 1, 1, &o.with_range(1.0, 0.0)));
    bad(render_overlay(&img, &[0.0], 1, 1, &o.with_range(0.0, f32::INFINITY)));
    assert!(resize_map(&[0.0], 1, 1, 0, 3).is_err());
}

#[test]
fn resize_map_is_bilinear_with_half_pixel_centres() {
    // [0, 1] to 4 wide (align_corners=False): 0, 0.25, 0.75, 1.
    assert_eq!(resize_map(&[0.0, 1.0], 2, 1, 4, 1).unwrap(), [0.0, 0.25, 0.75, 1.0]);
    assert_eq!(resize_map(&[1.0, 2.0, 3.0, 4.0], 2, 2, 2, 2).unwrap(), [1.0, 2.0, 3.0, 4.0]);
}

/// A 10×10 map with a 4×4 square of ones at (3..7, 3..7).
fn square_map() -> Vec<f32> {
    (0..100).map(|i| if (3..7).contains(&(i % 10)) && (3..7).contains(&(i / 10)) { 1.0 } else { 0.0 }).collect()
}

#[test]
fn outline_draws_the_square_boundary_only() {
    let mut img = grey(12, 10, 50);
    outline(&mut img, &square_map(), 10, 10, 0.5, [255, 0, 255]).unwrap();
    for y in 0..10 {
        for x in 0..12 {
            let on_square = (3..7).contains(&x) && (3..7).contains(&y);
            let border = on_square && (x == 3 || x == 6 || y == 3 || y == 6);
            let want = if border { [255, 0, 255] } else { [50, 50, 50] };
            assert_eq!(pixel(&img, x, y), want, "({x}, {y})");
        }
    }
}

#[test]
fn outline_edges_nan_and_errors() {
    let mut img = grey(3, 3, 0);
    outline(&mut img, &[1.0; 9], 3, 3, 0.5, [9, 9, 9]).unwrap();
    assert_eq!(pixel(&img, 1, 1), [0, 0, 0], "interior stays");
    assert_eq!(pixel(&img, 0, 2), [9, 9, 9], "the map's edge bounds a region");
    let mut img = grey(3, 3, 0);
    outline(&mut img, &[f32::NAN; 9], 3, 3, 0.5, [9, 9, 9]).unwrap();
    assert!(img.data.iter().all(|&v| v == 0));
    assert!(outline(&mut img, &[0.0; 16], 4, 4, 0.5, [9, 9, 9]).is_err(), "map larger than image");
    assert!(outline(&mut img, &[0.0; 3], 2, 2, 0.5, [9, 9, 9]).is_err());
}

#[test]
fn overlay_outline_option_draws_in_the_outline_colour() {
    let img = grey(20, 20, 0);
    let out = render_overlay(&img, &square_map(), 10, 10, &no_bar().with_opacity(0.0).with_outline(Some(0.5))).unwrap();
    // The square (3..7 of 10) covers about 6..14 of 20 after resizing; its corner is outlined.
    assert!(out.data.chunks_exact(3).any(|p| p == OUTLINE_COLOUR));
    assert_eq!(pixel(&out, 10, 10), [0, 0, 0]);
    assert_eq!(pixel(&out, 0, 0), [0, 0, 0]);
}

#[test]
fn png_round_trips_rgb_and_rgba() {
    let img = render_overlay(&grey(33, 21, 90), &square_map(), 10, 10, &OverlayOptions::default()).unwrap();
    let back = decode_image(&encode_png(&img).unwrap(), "overlay.png", &ImageLimits::default()).unwrap();
    assert_eq!(back, img);
    let rgba = RgbImage::from_rgba(2, 1, &[1, 2, 3, 4, 5, 6, 7, 255]).unwrap();
    let back = decode_image(&encode_png(&rgba).unwrap(), "a.png", &ImageLimits::default()).unwrap();
    assert_eq!(back, rgba);
}
