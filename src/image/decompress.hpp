// Streaming decompression of .xz (liblzma) and .gz (zlib) images: bytes in,
// bytes out, no files. Internal to the image layer.
#pragma once

#include <localvm/image/url.hpp>

#include <functional>
#include <memory>
#include <string_view>

namespace localvm::image::detail {

/// Receives decompressed output, chunk by chunk.
using output_fn = std::function<void(std::string_view)>;

/// Decompresses one stream of `compression` (xz: one or more concatenated
/// streams; gzip: one or more members). `compression::none` passes bytes
/// through. Not copyable.
class decompressor {
public:
    explicit decompressor(compression c);
    decompressor(decompressor&&) noexcept;
    decompressor& operator=(decompressor&&) noexcept;
    ~decompressor();

    /// Consumes `in`, handing what it decompresses to `out`. Throws
    /// `localvm::error` with `errc::protocol_error` naming the format when
    /// the data is corrupt (or data follows the end of the stream).
    void feed(std::string_view in, const output_fn& out);
    /// Ends the input: throws `errc::protocol_error` when the stream is
    /// truncated (no end marker seen).
    void finish(const output_fn& out);
    /// Starts over, as if new.
    void reset();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
    compression compression_;
};

} // namespace localvm::image::detail
