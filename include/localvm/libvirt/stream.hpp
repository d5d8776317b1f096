// A libvirt data stream: a console, or a volume upload.
#pragma once

#include <localvm/wait.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

namespace localvm::libvirt {

namespace detail {
struct stream_state;
} // namespace detail

/// The data stream a call opened (`client::open_console`,
/// `client::open_upload`): packets carrying that call's serial, in either
/// direction. Move-only; use from the client's executor. Destroying an
/// unfinished stream aborts it (as `abort()`).
class stream {
public:
    stream(stream&&) noexcept;
    stream& operator=(stream&&) noexcept;
    ~stream();

    /// The next data the daemon sent, in order; nullopt once the daemon
    /// ended the stream successfully. Waits at most `timeout` (`no_deadline`: no
    /// limit). Throws `call_error` (`errc::libvirt_error`) when the daemon
    /// ended it with an error, `errc::libvirt_closed` when the connection
    /// ended first, `errc::timeout`, `errc::invalid_argument` if another
    /// `read` waits. Cancellation: throws `operation_aborted`; no data is lost.
    boost::asio::awaitable<std::optional<std::string>>
    read(std::chrono::milliseconds timeout = no_deadline);

    /// Queues `data` to the daemon in packets of at most
    /// `stream_chunk_size` bytes; returns once they are handed to the
    /// connection (not when the daemon has taken them). Throws
    /// `errc::libvirt_closed` when the connection has ended, the daemon's
    /// error when it ended the stream with one, `errc::invalid_argument`
    /// after `finish` or `abort`.
    boost::asio::awaitable<void> write(std::string data);

    /// Ends the stream successfully from this side and waits for the daemon
    /// to confirm (for an upload: everything is written). Throws as `read`
    /// (the daemon's error, e.g. a failed write to the volume); waits at most
    /// `timeout` (`no_deadline`: no limit).
    boost::asio::awaitable<void> finish(std::chrono::milliseconds timeout = no_deadline);

    /// Ends the stream with an error from this side, at once; later data
    /// from the daemon for it is dropped. Idempotent; never throws.
    void abort() noexcept;

    /// Bytes received and not yet read.
    std::size_t buffered() const noexcept;

private:
    friend class client;
    explicit stream(std::shared_ptr<detail::stream_state> s);
    std::shared_ptr<detail::stream_state> s_;
};

} // namespace localvm::libvirt
