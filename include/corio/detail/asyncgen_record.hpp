// How the loop knows the async generators that may still need closing (asyncio's
// shutdown_asyncgens): each started generator links a record into the loop.
#pragma once

#include "corio/coro.hpp"
#include "corio/detail/intrusive_list.hpp"

namespace corio {
class EventLoop;
}

namespace corio::detail {

struct AsyncGenTag;

struct AsyncGenRecord : ListHook<AsyncGenTag> {
    // Closes the generator (runs its cleanup); called by the loop at shutdown.
    virtual Coro<> close_from_loop() = 0;
    // The loop is closing without having closed this generator: free it if nobody owns it.
    virtual void loop_closing() noexcept = 0;
    // Not closed yet, nor being closed, nor tried: what shutdown_asyncgens still has to close.
    virtual bool wants_closing() const noexcept = 0;
    EventLoop* loop = nullptr;  // the loop it was first iterated on, until that loop closes
    bool closing = false;         // a closer task holds it (at most one ever does at a time)
    bool close_attempted = false;  // a closer has run: shutdown does not try again (asyncio: one pass)

protected:
    ~AsyncGenRecord() = default;
};

}  // namespace corio::detail
