// io_uring: a wake-up from another thread (call_soon_threadsafe, a thread call's result) reaches
// a loop asleep in the ring even when the tick before filled the submission queue exactly, so
// that the eventfd's read could not be armed. The test binary asks for io_uring itself, and
// the test is skipped where the kernel forbids it.
#include <corio/backend.hpp>
#include <corio/corio.hpp>
#include <corio/testing.hpp>

#include "net_support.hpp"

#include <sys/resource.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;

namespace {

const bool g_io_uring_chosen = [] {
    if (make_io_uring_backend()) ::setenv("CORIO_BACKEND", "io_uring", 1);
    return true;
}();

bool on_io_uring() { return std::string(get_running_loop().backend().name()) == "io_uring"; }

// Enough fds for `pairs` socket pairs (and the test's others), or false.
bool room_for(std::size_t pairs) {
    rlimit r{};
    if (::getrlimit(RLIMIT_NOFILE, &r) != 0) return false;
    const rlim_t wanted = 2 * pairs + 256;
    if (r.rlim_cur >= wanted) return true;
    if (r.rlim_max < wanted) return false;
    r.rlim_cur = wanted;
    return ::setrlimit(RLIMIT_NOFILE, &r) == 0;
}

Coro<> receive_one(Socket* s) {
    Coro<std::string> receiving = sock_recv(*s, 16);
    (void)co_await std::move(receiving);
}

}  // namespace

// The ring's submission queue has 1024 entries: after a thread call took the wake-up read's
// completion, 1024 receives started in one tick leave no entry to re-arm it. The loop then
// slept until a timer (here the 10 s limit) although the thread had posted long before.
CORIO_TEST(IoUringWakeup, AWakeUpAfterATickThatFilledTheQueueIsNotLost) {
    constexpr std::size_t kEntries = 1024;
    if (!on_io_uring() || !room_for(kEntries)) {
        [] { GTEST_SKIP() << "needs io_uring and 2048 fds"; }();
        co_return;
    }
    std::vector<Socket> ours, theirs;
    for (std::size_t i = 0; i < kEntries; ++i) {
        auto [a, b] = corio_test::unix_socket_pair();
        ours.push_back(std::move(a));
        theirs.push_back(std::move(b));
    }
    auto first = to_thread([] { return 0; });
    co_await std::move(first);  // its completion consumed the armed wake-up read
    std::vector<Task<>> receivers;
    for (auto& s : ours) receivers.push_back(create_task(receive_one(&s)));
    EventLoop& loop = get_running_loop();
    auto posted = std::make_shared<Event>();
    // Posts once the loop is likely asleep; on time or not, the callback must run.
    std::thread poster([&loop, posted] {
        std::this_thread::sleep_for(50ms);
        loop.call_soon_threadsafe([posted] { posted->set(); });
    });
    auto limited = wait_for(posted->wait(), 10s);
    std::optional<TimeoutError> lost;
    try {
        co_await std::move(limited);
    } catch (const TimeoutError& e) {
        lost.emplace(e);
    }
    poster.join();
    EXPECT_FALSE(lost.has_value()) << "the loop slept through call_soon_threadsafe until the timeout";
    for (auto& t : receivers) t.cancel();
    for (auto& t : receivers) {
        Task<> ending = std::move(t);
        try {
            co_await std::move(ending);
        } catch (const CancelledError&) {
        }
    }
}
