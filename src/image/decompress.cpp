#include "decompress.hpp"

#include <localvm/error.hpp>

#include <array>

#include <lzma.h>
#include <zlib.h>

namespace localvm::image::detail {

struct decompressor::impl {
    lzma_stream xz = LZMA_STREAM_INIT;
    z_stream gz{};
    bool gz_open = false;
    bool ended = false; // the last stream/member was complete
    std::array<char, 256 * 1024> buf;

    ~impl() { close(); }
    void close() {
        lzma_end(&xz);
        if (gz_open)
            inflateEnd(&gz);
        gz_open = false;
    }
};

namespace {

[[noreturn]] void corrupt(std::string_view format, std::string_view what) {
    throw_error(errc::protocol_error,
                "the " + std::string(format) + " data is not valid: " + std::string(what));
}

} // namespace

decompressor::decompressor(compression c)
    : impl_(std::make_unique<impl>())
    , compression_(c) {
    reset();
}

decompressor::decompressor(decompressor&&) noexcept = default;
decompressor& decompressor::operator=(decompressor&&) noexcept = default;
decompressor::~decompressor() = default;

void decompressor::reset() {
    impl_->close();
    impl_->ended = false;
    if (compression_ == compression::xz) {
        impl_->xz = LZMA_STREAM_INIT;
        // LZMA_CONCATENATED: several .xz streams back to back are one file,
        // as xz(1) reads them; the end is only known at finish().
        if (lzma_stream_decoder(&impl_->xz, UINT64_MAX, LZMA_CONCATENATED) != LZMA_OK)
            throw_error(errc::unsupported, "liblzma cannot start an xz decoder");
    } else if (compression_ == compression::gzip) {
        impl_->gz = z_stream{};
        if (inflateInit2(&impl_->gz, 16 + MAX_WBITS) != Z_OK)
            throw_error(errc::unsupported, "zlib cannot start a gzip decoder");
        impl_->gz_open = true;
    }
}

void decompressor::feed(std::string_view in, const output_fn& out) {
    auto& s = *impl_;
    if (compression_ == compression::none) {
        if (!in.empty())
            out(in);
        return;
    }
    if (compression_ == compression::xz) {
        s.xz.next_in = reinterpret_cast<const uint8_t*>(in.data());
        s.xz.avail_in = in.size();
        s.xz.avail_out = 1; // enter the loop
        // Also go on while the output buffer came back full: more may be pending.
        while (s.xz.avail_in > 0 || s.xz.avail_out == 0) {
            s.xz.next_out = reinterpret_cast<uint8_t*>(s.buf.data());
            s.xz.avail_out = s.buf.size();
            auto rc = lzma_code(&s.xz, LZMA_RUN);
            std::size_t n = s.buf.size() - s.xz.avail_out;
            if (n)
                out({s.buf.data(), n});
            if (rc == LZMA_STREAM_END) {
                if (s.xz.avail_in > 0)
                    corrupt("xz", "data after the end of the stream");
                s.ended = true;
                break;
            }
            if (rc == LZMA_BUF_ERROR && s.xz.avail_in == 0)
                break; // nothing pending after all
            if (rc != LZMA_OK)
                corrupt("xz", rc == LZMA_FORMAT_ERROR ? "not in the .xz format"
                              : rc == LZMA_DATA_ERROR ? "corrupt data"
                                                      : "decoder error " + std::to_string(rc));
        }
        return;
    }
    s.gz.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    s.gz.avail_in = static_cast<uInt>(in.size());
    s.gz.avail_out = 1; // enter the loop
    while (s.gz.avail_in > 0 || s.gz.avail_out == 0) {
        if (s.ended && s.gz.avail_in == 0)
            break;
        if (s.ended) {
            // Another gzip member follows (as `cat a.gz b.gz`): gunzip reads on.
            inflateReset(&s.gz);
            s.ended = false;
        }
        s.gz.next_out = reinterpret_cast<Bytef*>(s.buf.data());
        s.gz.avail_out = static_cast<uInt>(s.buf.size());
        int rc = inflate(&s.gz, Z_NO_FLUSH);
        std::size_t n = s.buf.size() - s.gz.avail_out;
        if (n)
            out({s.buf.data(), n});
        if (rc == Z_STREAM_END) {
            s.ended = true;
            continue;
        }
        if (rc == Z_BUF_ERROR && s.gz.avail_in == 0)
            break; // nothing pending after all
        if (rc != Z_OK)
            corrupt("gzip", s.gz.msg ? s.gz.msg : "inflate error " + std::to_string(rc));
    }
}

void decompressor::finish(const output_fn& out) {
    auto& s = *impl_;
    if (compression_ == compression::none)
        return;
    if (compression_ == compression::xz) {
        s.xz.next_in = nullptr;
        s.xz.avail_in = 0;
        for (;;) {
            s.xz.next_out = reinterpret_cast<uint8_t*>(s.buf.data());
            s.xz.avail_out = s.buf.size();
            auto rc = lzma_code(&s.xz, LZMA_FINISH);
            std::size_t n = s.buf.size() - s.xz.avail_out;
            if (n)
                out({s.buf.data(), n});
            if (rc == LZMA_STREAM_END)
                return;
            if (rc != LZMA_OK)
                corrupt("xz", "truncated or corrupt (error " + std::to_string(rc) + ")");
        }
    }
    if (!s.ended)
        corrupt("gzip", "truncated (no end of stream)");
}

} // namespace localvm::image::detail
