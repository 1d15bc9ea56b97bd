import CPNG

// PNG through libpng.
//
// Error handling without setjmp: libpng reports a fatal error by calling the error callback
// and then longjmp-ing to a jmp_buf the caller armed with setjmp; a callback that returns
// makes libpng abort(). Swift cannot call setjmp (a function that returns twice), and a
// longjmp across Swift frames would be undefined behaviour. libpng's simplified API solves
// exactly this: png_image_write_to_memory builds the usual png_create_write_struct /
// write-callback pipeline inside png_safe_execute, whose setjmp lives in libpng's own C code,
// and turns any png_error into a 0 return with the reason in `image.message`. So every libpng
// failure reaches Swift as a thrown error, and nothing here can abort or jump.
//
// The encoded bytes are then written by Files.write (write(2) loop, close(2) checked, rename
// into place), so I/O errors are reported with the failing call and the path.

enum PNGWriter {
  /// The PNG file's bytes for an 8-bit RGB image.
  static func encode(_ image: RasterImage) throws -> [UInt8] {
    precondition(image.pixels.count == image.width * image.height * 3)
    guard image.width <= 1 << 20, image.height <= 1 << 20 else {
      throw OutputError("a \(image.width)x\(image.height) image is too large for a PNG")
    }
    // A compressed PNG is almost never larger than its raw pixels plus a little framing;
    // should it be, libpng reports the size it needs and the write is repeated once.
    var capacity = image.pixels.count + image.pixels.count / 8 + 4096
    for _ in 0..<2 {
      var control = png_image()
      control.version = png_uint_32(PNG_IMAGE_VERSION)
      control.width = png_uint_32(image.width)
      control.height = png_uint_32(image.height)
      control.format = png_uint_32(PNG_FORMAT_FLAG_COLOR)  // PNG_FORMAT_RGB: 8-bit, no alpha
      var output = [UInt8](repeating: 0, count: capacity)
      var size = png_alloc_size_t(capacity)
      let ok = output.withUnsafeMutableBytes { destination in
        image.pixels.withUnsafeBytes { source in
          png_image_write_to_memory(&control, destination.baseAddress, &size, 0, source.baseAddress,
                                    png_int_32(image.width * 3), nil)
        }
      }
      png_image_free(&control)
      if ok != 0 {
        output.removeSubrange(Int(size)...)
        return output
      }
      if Int(size) > capacity {
        capacity = Int(size)
        continue
      }
      throw OutputError("libpng could not encode the image: \(message(of: control))")
    }
    throw OutputError("libpng could not encode the image: the output kept growing")
  }

  static func write(_ image: RasterImage, to path: String) throws {
    try Files.write(try encode(image), to: path)
  }

  /// The NUL-terminated `message` of a png_image.
  static func message(of control: png_image) -> String {
    withUnsafeBytes(of: control.message) { raw in
      let bytes = raw.prefix { $0 != 0 }
      return bytes.isEmpty ? "unknown error" : String(decoding: bytes, as: UTF8.self)
    }
  }
}
