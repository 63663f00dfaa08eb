#include "corio/contextlib.hpp"

namespace corio {

Coro<> AsyncExitStack::aclose() {
    detail::CleanupAfterCancel cleaning;  // the exits may take their time after a cancellation
    std::exception_ptr error;
    while (!exits_.empty()) {
        std::unique_ptr<Exit> exit = std::move(exits_.back());
        exits_.pop_back();
        try {
            Coro<> closing = exit->run();
            co_await std::move(closing);
        } catch (...) {
            error = std::current_exception();
        }
    }
    if (error) std::rethrow_exception(error);
}

}  // namespace corio
