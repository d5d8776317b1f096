#include "probe_machine.hpp"

#include <algorithm>

namespace localvm::ssh::detail {

namespace {

long long to_ms(probe_clock::duration d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

} // namespace

probe_machine::probe_machine(std::string endpoint, const probe_options& opts)
    : endpoint_(std::move(endpoint))
    , opts_(opts)
    , pause_(opts.retry_interval, opts.max_retry_interval) {}

probe_action probe_machine::resume(const probe_event& ev, probe_clock::time_point now) {
    using k = probe_event_kind;
    if (state_ == state::done || state_ == state::failed)
        return finished();

    switch (ev.kind) {
    case k::start: {
        if (state_ != state::idle)
            break;
        using std::chrono::milliseconds;
        const milliseconds zero{0};
        if (opts_.connect_timeout <= zero || opts_.attempt_timeout <= zero ||
            opts_.retry_interval <= zero || opts_.max_retry_interval <= zero ||
            opts_.timeout <= zero)
            return fail(errc::invalid_argument,
                        "SSH probe of " + endpoint_ + ": every probe_options duration must be positive");
        deadline_ = now + opts_.timeout;
        return begin_attempt(now);
    }
    case k::connected:
        if (state_ != state::connecting)
            break;
        state_ = state::reading;
        return read_more(now);
    case k::connect_failed:
        if (state_ != state::connecting)
            break;
        return attempt_failed("connect: " + std::string(ev.text), now);
    case k::data:
        if (state_ != state::reading)
            break;
        if (consume(ev.data)) {
            if (overlong_)
                return attempt_failed("a line longer than " + std::to_string(max_line) +
                                          " bytes (not an SSH server)",
                                      now);
            state_ = state::done;
            return finished();
        }
        return read_more(now);
    case k::closed:
        if (state_ != state::reading)
            break;
        if (!ev.text.empty())
            return attempt_failed("read: " + std::string(ev.text), now);
        return attempt_failed(attempt_bytes_ == 0
                                  ? std::string("connection closed before the SSH banner")
                                  : "connection closed after " + std::to_string(attempt_bytes_) +
                                        " bytes without an SSH banner",
                              now);
    case k::io_timeout:
        if (state_ == state::connecting)
            return attempt_failed("connect timed out", now);
        if (state_ == state::reading)
            return attempt_failed("connection accepted but no SSH banner within " +
                                      std::to_string(to_ms(now - attempt_start_)) + " ms",
                                  now);
        break;
    case k::waited:
        if (state_ != state::waiting)
            break;
        return begin_attempt(now);
    }
    // An event the current state does not expect is a driver bug: fail
    // loudly rather than guess.
    return fail(errc::invalid_argument, "SSH probe of " + endpoint_ + ": unexpected event");
}

probe_action probe_machine::begin_attempt(probe_clock::time_point now) {
    if (now >= deadline_)
        return fail(errc::ssh_unreachable, "");
    ++attempts_;
    attempt_start_ = now;
    attempt_deadline_ = std::min(now + opts_.attempt_timeout, deadline_);
    line_.clear();
    attempt_bytes_ = 0;
    overlong_ = false;
    state_ = state::connecting;
    probe_clock::duration t = std::min<probe_clock::duration>(opts_.connect_timeout,
                                                              attempt_deadline_ - now);
    return {probe_action_kind::connect, t};
}

probe_action probe_machine::read_more(probe_clock::time_point now) {
    if (now >= attempt_deadline_)
        return resume({probe_event_kind::io_timeout, {}, {}}, now);
    return {probe_action_kind::read, attempt_deadline_ - now};
}

probe_action probe_machine::attempt_failed(std::string why, probe_clock::time_point now) {
    last_failure_ = std::move(why);
    if (now >= deadline_)
        return fail(errc::ssh_unreachable, "");
    state_ = state::waiting;
    return {probe_action_kind::wait, pause_.next(deadline_ - now)};
}

probe_action probe_machine::fail(errc code, std::string diagnostic) {
    state_ = state::failed;
    error_ = code;
    if (diagnostic.empty()) {
        diagnostic = "no SSH banner from " + endpoint_ + " within " +
                     std::to_string(opts_.timeout.count()) + " ms (" + std::to_string(attempts_) +
                     (attempts_ == 1 ? " attempt" : " attempts") + ")";
        if (!last_failure_.empty())
            diagnostic += "; last: " + last_failure_;
    }
    diagnostic_ = std::move(diagnostic);
    return finished();
}

probe_action probe_machine::finished() const {
    return {state_ == state::done ? probe_action_kind::done : probe_action_kind::fail, {}};
}

bool probe_machine::consume(std::string_view bytes) {
    attempt_bytes_ += bytes.size();
    for (char c : bytes) {
        if (c == '\n') {
            if (!line_.empty() && line_.back() == '\r')
                line_.pop_back();
            if (line_.starts_with("SSH-")) {
                banner_ = std::move(line_);
                return true;
            }
            line_.clear(); // a line before the banner (allowed by RFC 4253)
            continue;
        }
        // With its '\n' this line would exceed max_line.
        if (line_.size() + 1 >= max_line) {
            overlong_ = true;
            return true;
        }
        line_.push_back(c);
    }
    return false;
}

} // namespace localvm::ssh::detail
