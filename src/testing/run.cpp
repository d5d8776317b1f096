#include <localvm/error.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <exception>
#include <optional>

namespace localvm::testing {

void run_coroutine(std::function<boost::asio::awaitable<void>()> body,
                   std::chrono::steady_clock::duration deadline, const std::string& what) {
    std::optional<std::exception_ptr> outcome;
    {
        boost::asio::io_context ctx;
        boost::asio::co_spawn(ctx, std::move(body),
                              [&](std::exception_ptr e) { outcome = std::move(e); });
        ctx.run_for(deadline);
        // Destroying ctx here destroys the unfinished coroutine frame too.
    }
    if (!outcome) {
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline).count();
        throw_error(errc::timeout, what + " did not finish within " + std::to_string(ms) + " ms");
    }
    if (*outcome)
        std::rethrow_exception(*outcome);
}

} // namespace localvm::testing
