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
    , pause_(opts.retry_interval, opts.max_retry_interval)
    , answered_(opts.network_up)
    , patience_(opts.attempt_timeout) {}

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
            opts_.attempt_interval <= zero || opts_.timeout <= zero ||
            opts_.max_attempt_timeout <= zero)
            return fail(errc::invalid_argument,
                        "SSH probe of " + endpoint_ +
                            ": every probe_options duration must be positive");
        if (opts_.max_open_attempts < 1)
            return fail(errc::invalid_argument,
                        "SSH probe of " + endpoint_ + ": max_open_attempts must be at least 1");
        deadline_ = now + opts_.timeout;
        next_attempt_ = now;
        return next(now);
    }
    case k::issued:
        if (state_ != state::issuing)
            break;
        return next(now);
    case k::tick:
        if (state_ != state::waiting)
            break;
        return next(now);
    case k::connected:
    case k::connect_failed:
    case k::data:
    case k::closed:
        if (state_ != state::waiting)
            break;
        return on_io(ev, now);
    }
    // An event the last action does not allow is a driver bug: fail loudly
    // rather than guess.
    return fail(errc::invalid_argument, "SSH probe of " + endpoint_ + ": unexpected event");
}

probe_action probe_machine::on_io(const probe_event& ev, probe_clock::time_point now) {
    using k = probe_event_kind;
    const phase expected = ev.kind == k::connected || ev.kind == k::connect_failed
                               ? phase::connecting
                               : phase::reading;
    attempt* a = find(ev.id, expected);
    if (!a)
        return fail(errc::invalid_argument, "SSH probe of " + endpoint_ +
                                                ": an event for connection " +
                                                std::to_string(ev.id) + " it does not expect");
    // Bytes, an EOF or a reset come from the guest's own stack: its network
    // is up. (A failed connect does not count: under hostfwd it is the host
    // side refusing, QEMU's forward gone.)
    if (ev.kind == k::data || ev.kind == k::closed)
        answered_ = true;
    switch (ev.kind) {
    case k::connected:
        a->ph = phase::to_read;
        a->deadline = a->begun + a->patience;
        break;
    case k::connect_failed:
        attempt_failed(*a, "connect: " + std::string(ev.text), now);
        break;
    case k::data: {
        const int r = consume(*a, ev.data);
        if (r > 0) {
            state_ = state::done;
            return finished();
        }
        if (r < 0)
            attempt_failed(
                *a, "a line longer than " + std::to_string(max_line) + " bytes (not an SSH server)",
                now);
        else
            a->ph = phase::to_read;
        break;
    }
    case k::closed:
        if (!ev.text.empty())
            attempt_failed(*a, "read: " + std::string(ev.text), now);
        else
            attempt_failed(*a,
                           a->bytes == 0 ? std::string("connection closed before the SSH banner")
                                         : "connection closed after " + std::to_string(a->bytes) +
                                               " bytes without an SSH banner",
                           now);
        break;
    default:
        break;
    }
    return next(now);
}

// The one place that decides: closes first (failed, timed out, or before
// the guest answered the oldest when a fresh attempt needs room), then reads
// to start, then a fresh attempt when due (once the guest answered: only
// when none is open), else wait for the earliest deadline.
probe_action probe_machine::next(probe_clock::time_point now) {
    if (now >= deadline_)
        return fail(errc::ssh_unreachable, "");
    auto close = [&](std::vector<attempt>::iterator it) {
        const auto id = it->id;
        open_.erase(it);
        state_ = state::issuing;
        return probe_action{probe_action_kind::close, id, {}};
    };
    auto silent_for = [&](const attempt& a) {
        return a.ph == phase::connecting ? std::string("connect timed out")
                                         : "connection accepted but no SSH banner within " +
                                               std::to_string(to_ms(now - a.begun)) + " ms";
    };
    for (auto it = open_.begin(); it != open_.end(); ++it)
        if (it->ph == phase::to_close)
            return close(it);
    for (auto it = open_.begin(); it != open_.end(); ++it)
        if (now >= it->deadline) {
            // sshd accepted but too slow for the banner: give the next more time.
            if (answered_ && it->ph != phase::connecting)
                patience_ =
                    std::max(patience_, std::min(it->patience * 2,
                                                 probe_clock::duration(opts_.max_attempt_timeout)));
            attempt_failed(*it, silent_for(*it), now);
            return close(it);
        }
    for (auto& a : open_)
        if (a.ph == phase::to_read) {
            a.ph = phase::reading;
            state_ = state::issuing;
            return {probe_action_kind::read, a.id, {}};
        }
    // Once the guest answered, an open connection is never replaced.
    const bool may_start = !answered_ || open_.empty();
    if (may_start && now >= next_attempt_) {
        if (open_.size() >= static_cast<std::size_t>(opts_.max_open_attempts)) {
            // Not a failure of its own (no backoff): it makes room.
            last_failure_ = silent_for(open_.front());
            return close(open_.begin());
        }
        attempt a;
        a.id = next_id_++;
        a.begun = now;
        a.patience = patience_;
        a.deadline = now + std::min(probe_clock::duration(opts_.connect_timeout), a.patience);
        open_.push_back(std::move(a));
        ++attempts_;
        next_attempt_ = now + opts_.attempt_interval;
        state_ = state::issuing;
        return {probe_action_kind::connect, open_.back().id, {}};
    }
    auto until = may_start ? std::min(deadline_, next_attempt_) : deadline_;
    for (const auto& a : open_)
        until = std::min(until, a.deadline);
    state_ = state::waiting;
    return {probe_action_kind::wait, 0, until};
}

probe_machine::attempt* probe_machine::find(std::uint32_t id, phase expected) {
    for (auto& a : open_)
        if (a.id == id)
            return a.ph == expected ? &a : nullptr;
    return nullptr;
}

void probe_machine::attempt_failed(attempt& a, std::string why, probe_clock::time_point now) {
    a.ph = phase::to_close;
    last_failure_ = std::move(why);
    // A refused or reset connection says the guest answers: try again soon.
    // Once it answered, the pause is all: no other attempt is due.
    next_attempt_ = answered_ ? now + pause_.next() : std::min(next_attempt_, now + pause_.next());
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
    open_.clear(); // the driver closes every connection on done/fail
    return finished();
}

probe_action probe_machine::finished() const {
    return {state_ == state::done ? probe_action_kind::done : probe_action_kind::fail, 0, {}};
}

int probe_machine::consume(attempt& a, std::string_view bytes) {
    a.bytes += bytes.size();
    for (char c : bytes) {
        if (c == '\n') {
            if (!a.line.empty() && a.line.back() == '\r')
                a.line.pop_back();
            if (a.line.starts_with("SSH-")) {
                banner_ = std::move(a.line);
                open_.clear(); // the driver closes every connection on done
                return 1;
            }
            a.line.clear(); // a line before the banner (allowed by RFC 4253)
            continue;
        }
        // With its '\n' this line would exceed max_line.
        if (a.line.size() + 1 >= max_line)
            return -1;
        a.line.push_back(c);
    }
    return 0;
}

} // namespace localvm::ssh::detail
