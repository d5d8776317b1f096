#include <localvm/libvirt/keepalive.hpp>

namespace localvm::libvirt {

keepalive::keepalive(keepalive_options options, time_point now) noexcept
    : options_(options)
    , last_heard_(now) {}

void keepalive::on_received(time_point now) noexcept {
    if (dead_)
        return;
    last_heard_ = now;
    sent_ = 0;
}

keepalive::action keepalive::next(time_point now) noexcept {
    if (options_.interval.count() <= 0)
        return {verdict::disabled, {}};
    if (dead_)
        return {verdict::dead, {}};
    // The (sent_ + 1)-th interval of silence ends here: PING then, unless
    // `count` PINGs went unanswered already.
    const time_point due = last_heard_ + options_.interval * (sent_ + 1);
    if (now < due)
        return {verdict::wait, due};
    if (sent_ >= options_.count) {
        dead_ = true;
        return {verdict::dead, {}};
    }
    ++sent_;
    return {verdict::send_ping, {}};
}

} // namespace localvm::libvirt
