//! [`Image`]: 8-bit pixels encoded as PNG, or an existing PNG or JPEG file.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use wandb_format::json;

use crate::error::{Error, Result};
use crate::media::{FileMedia, sha256_hex};

/// The largest width or height the SDK accepts (Pillow's limit).
const MAX_DIMENSION: u32 = 65_500;

/// The channels of each pixel in a buffer given to [`Image::from_pixels`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Channels {
    /// One byte per pixel: grey level (the SDK's mode `L`).
    Grey,
    /// Three bytes per pixel: red, green, blue.
    Rgb,
    /// Four bytes per pixel: red, green, blue, alpha.
    Rgba,
}

impl Channels {
    /// Bytes per pixel.
    pub fn count(self) -> usize {
        match self {
            Channels::Grey => 1,
            Channels::Rgb => 3,
            Channels::Rgba => 4,
        }
    }

    fn color_type(self) -> png::ColorType {
        match self {
            Channels::Grey => png::ColorType::Grayscale,
            Channels::Rgb => png::ColorType::Rgb,
            Channels::Rgba => png::ColorType::Rgba,
        }
    }
}

/// An image, logged as the SDK's `image-file` value with its file under `files/media/images/`.
#[derive(Clone)]
pub struct Image {
    bytes: Arc<[u8]>,
    sha256: String,
    /// `png`, or the extension of the file it was read from.
    format: String,
    extension: String,
    width: u32,
    height: u32,
    caption: Option<String>,
}

impl fmt::Debug for Image {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Image")
            .field("format", &self.format)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("bytes", &self.bytes.len())
            .field("caption", &self.caption)
            .finish()
    }
}

impl Image {
    /// An image from 8-bit pixels, row by row from the top left, `channels` bytes per pixel;
    /// encoded as PNG (grey, RGB or RGBA, as the SDK's Pillow does for modes `L`, `RGB`,
    /// `RGBA`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if a dimension is 0 or above 65,500, or the buffer does not
    /// hold exactly `width * height * channels` bytes.
    pub fn from_pixels(
        width: u32,
        height: u32,
        channels: Channels,
        pixels: &[u8],
    ) -> Result<Image> {
        let invalid = |reason: String| Error::InvalidArgument {
            what: "image",
            reason,
        };
        if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
            return Err(invalid(format!(
                "{width}x{height} pixels: each side must be 1 to {MAX_DIMENSION}"
            )));
        }
        let expected = (width as usize)
            .checked_mul(height as usize)
            .and_then(|n| n.checked_mul(channels.count()));
        if expected != Some(pixels.len()) {
            return Err(invalid(format!(
                "{width}x{height} pixels of {} byte(s) need {} bytes, the buffer has {}",
                channels.count(),
                u64::from(width) * u64::from(height) * channels.count() as u64,
                pixels.len()
            )));
        }
        let mut out = Vec::with_capacity(pixels.len() / 2 + 128);
        let encode = |out: &mut Vec<u8>| -> std::result::Result<(), png::EncodingError> {
            let mut encoder = png::Encoder::new(out, width, height);
            encoder.set_color(channels.color_type());
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header()?;
            writer.write_image_data(pixels)?;
            writer.finish()
        };
        encode(&mut out).map_err(|e| invalid(format!("PNG encoding failed: {e}")))?;
        Ok(Image::from_encoded(out, "png".to_owned(), width, height))
    }

    /// An image from an existing PNG or JPEG file, stored as it is (the SDK copies the file
    /// and keeps its extension as the `format`).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file cannot be read, [`Error::InvalidArgument`] if it is not a PNG
    /// or JPEG file or has no extension.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Image> {
        let path = path.as_ref();
        let invalid = |reason: &str| Error::InvalidArgument {
            what: "image file",
            reason: format!("{}: {reason}", path.display()),
        };
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .filter(|e| !e.is_empty())
            .ok_or_else(|| invalid("has no file extension (.png, .jpg or .jpeg)"))?
            .to_owned();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, "read image file", e))?;
        match imagesize::image_type(&bytes) {
            Ok(imagesize::ImageType::Png | imagesize::ImageType::Jpeg) => {}
            _ => return Err(invalid("is not a PNG or JPEG file")),
        }
        let size = imagesize::blob_size(&bytes)
            .map_err(|e| invalid(&format!("cannot read its dimensions: {e}")))?;
        let (width, height) = (
            u32::try_from(size.width).map_err(|_| invalid("is too wide"))?,
            u32::try_from(size.height).map_err(|_| invalid("is too tall"))?,
        );
        Ok(Image::from_encoded(bytes, extension, width, height))
    }

    fn from_encoded(bytes: Vec<u8>, format: String, width: u32, height: u32) -> Image {
        Image {
            sha256: sha256_hex(&bytes),
            bytes: Arc::from(bytes),
            extension: format!(".{format}"),
            format,
            width,
            height,
            caption: None,
        }
    }

    /// The image with a caption (shown under it in the W&B UI).
    #[must_use]
    pub fn with_caption(mut self, caption: impl Into<String>) -> Image {
        self.caption = Some(caption.into());
        self
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The format recorded: `png` for encoded pixels, else the file's extension.
    pub fn format(&self) -> &str {
        &self.format
    }

    /// The caption, if any.
    pub fn caption(&self) -> Option<&str> {
        self.caption.as_deref()
    }
}

impl FileMedia for Image {
    fn media_subdir(&self) -> &'static str {
        "media/images"
    }

    fn extension(&self) -> &str {
        &self.extension
    }

    fn bytes(&self) -> &Arc<[u8]> {
        &self.bytes
    }

    fn sha256(&self) -> &str {
        &self.sha256
    }

    fn value_for(&self, path: &str) -> json::Map {
        // The SDK's key order: Media.to_json, then Image.to_json.
        let mut map = json::Map::with_capacity(8);
        if let Some(caption) = &self.caption {
            map.insert("caption", json::Value::String(caption.clone()));
        }
        map.insert("_type", json::Value::String("image-file".to_owned()));
        map.insert("sha256", json::Value::String(self.sha256.clone()));
        map.insert("size", json::Value::from(self.bytes.len() as u64));
        map.insert("path", json::Value::String(path.to_owned()));
        map.insert("format", json::Value::String(self.format.clone()));
        map.insert("width", json::Value::Int(i64::from(self.width)));
        map.insert("height", json::Value::Int(i64::from(self.height)));
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> (png::ColorType, u32, u32, Vec<u8>) {
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info.color_type, info.width, info.height, buf)
    }

    #[test]
    fn pixels_round_trip_through_png() {
        let pixels: Vec<u8> = (0..4 * 3 * 3).map(|i| (i * 7) as u8).collect();
        let image = Image::from_pixels(3, 4, Channels::Rgb, &pixels).unwrap();
        let (color, w, h, decoded) = decode(&image.bytes);
        assert_eq!((color, w, h), (png::ColorType::Rgb, 3, 4));
        assert_eq!(decoded, pixels);
        assert_eq!(image.sha256, sha256_hex(&image.bytes));
    }

    #[test]
    fn bad_buffers_are_refused() {
        let err = Image::from_pixels(2, 2, Channels::Rgba, &[0; 15]).unwrap_err();
        assert!(
            err.to_string().contains("need 16 bytes, the buffer has 15"),
            "{err}"
        );
        assert!(Image::from_pixels(0, 2, Channels::Grey, &[]).is_err());
        assert!(Image::from_pixels(70_000, 1, Channels::Grey, &[0; 70_000]).is_err());
    }

    #[test]
    fn files_must_be_png_or_jpeg() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("a.png");
        std::fs::write(&text, b"not an image").unwrap();
        let err = Image::from_file(&text).unwrap_err();
        assert!(
            err.to_string().contains("is not a PNG or JPEG file"),
            "{err}"
        );
        let missing = Image::from_file(dir.path().join("missing.png")).unwrap_err();
        assert!(matches!(missing, Error::Io { .. }), "{missing}");
        let image = Image::from_pixels(5, 2, Channels::Grey, &[9; 10]).unwrap();
        let png_path = dir.path().join("grey.png");
        std::fs::write(&png_path, &image.bytes[..]).unwrap();
        let read = Image::from_file(&png_path).unwrap();
        assert_eq!((read.width, read.height, read.format()), (5, 2, "png"));
        assert_eq!(read.sha256, image.sha256);
    }
}
