#include <localvm/error.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdio>
#include <exception>
#include <map>
#include <optional>

namespace localvm::testing {

namespace detail {

struct pending_registry {
    struct entry {
        std::string what;
        std::chrono::steady_clock::time_point since;
    };
    std::map<unsigned long long, entry> entries; // by registration order
    unsigned long long next = 1;
};

} // namespace detail

namespace {

// The registry of the run_coroutine executing on this thread, if any.
thread_local detail::pending_registry* current_registry = nullptr;

std::string seconds_text(std::chrono::steady_clock::duration d) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f s", std::chrono::duration<double>(d).count());
    return buf;
}

std::vector<std::string> describe(const detail::pending_registry& r) {
    std::vector<std::string> out;
    auto now = std::chrono::steady_clock::now();
    for (const auto& [id, e] : r.entries)
        out.push_back(e.what + " (for " + seconds_text(now - e.since) + ")");
    return out;
}

} // namespace

pending::pending(std::string what) : registry_(current_registry) {
    if (registry_) {
        id_ = registry_->next++;
        registry_->entries.emplace(id_, detail::pending_registry::entry{
                                            std::move(what), std::chrono::steady_clock::now()});
    }
}

pending::~pending() {
    if (registry_)
        registry_->entries.erase(id_);
}

std::vector<std::string> pending_now() {
    return current_registry ? describe(*current_registry) : std::vector<std::string>{};
}

void run_coroutine(std::function<boost::asio::awaitable<void>()> body,
                   std::chrono::milliseconds deadline, const std::string& what) {
    std::optional<std::exception_ptr> outcome;
    detail::pending_registry registry;
    std::vector<std::string> still_pending;
    auto* outer = current_registry;
    current_registry = &registry;
    try {
        boost::asio::io_context ctx;
        boost::asio::co_spawn(ctx, std::move(body),
                              [&](std::exception_ptr e) { outcome = std::move(e); });
        ctx.run_for(deadline);
        if (!outcome)
            still_pending = describe(registry);
        // Destroying ctx here destroys the unfinished coroutine frame too;
        // its `pending` objects unregister while the registry still exists.
    } catch (...) {
        current_registry = outer;
        throw;
    }
    current_registry = outer;
    if (!outcome) {
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline).count();
        std::string msg = what + " did not finish within " + std::to_string(ms) + " ms";
        if (still_pending.empty()) {
            msg += "; nothing was marked pending (wrap waits in localvm::testing::step)";
        } else {
            msg += "; still pending: ";
            for (std::size_t i = 0; i < still_pending.size(); ++i)
                msg += (i ? "; " : "") + still_pending[i];
        }
        throw_error(errc::timeout, msg);
    }
    if (*outcome)
        std::rethrow_exception(*outcome);
}

} // namespace localvm::testing
