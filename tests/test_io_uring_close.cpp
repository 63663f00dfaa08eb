// A loop closed on another thread than the one that ran it (that thread has exited) still
// completes every I/O operation its backend holds (loop.md's close(), backend.md's
// cancel_all()), on io_uring too, with and without deferred task work: receives whose socket
// was closed while they were in the kernel, and receives on sockets still open. A deferred ring
// is dropped there, and its operations completed by the backend; a ring without deferred task
// work gets the exited thread's completions late, through the kernel's fallback work, after
// the completions of close()'s own cancel.
#include <corio/backend.hpp>
#include <corio/corio.hpp>

#include "net_support.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;

namespace {

struct Config {
    const char* name;
    bool io_uring;
    const char* defer_taskrun;  // CORIO_IO_URING_DEFER_TASKRUN while the test runs
};
void PrintTo(const Config& c, std::ostream* os) { *os << c.name; }  // not as bytes in a failure

// Sets an environment variable for the test's duration (the ring reads it when it opens, and
// again when a loop closed elsewhere replaces it).
class ScopedEnv {
public:
    ScopedEnv(const char* name, const char* value) : name_(name) {
        if (const char* old = std::getenv(name)) old_ = old;
        ::setenv(name, value, 1);
    }
    ~ScopedEnv() {
        if (old_)
            ::setenv(name_, old_->c_str(), 1);
        else
            ::unsetenv(name_);
    }
    ScopedEnv(const ScopedEnv&) = delete;
    ScopedEnv& operator=(const ScopedEnv&) = delete;

private:
    const char* name_;
    std::optional<std::string> old_;
};

Coro<> receive(Socket* s) {
    Coro<std::string> receiving = sock_recv(*s, 16);
    (void)co_await std::move(receiving);
}

class LoopClosedElsewhere : public ::testing::TestWithParam<Config> {};

}  // namespace

// Thread A runs the loop with 15 receives in the kernel, releases 5 of their sockets in its
// last callback and 5 more once the run returns, then exits; thread B closes the loop. The old
// backend left 10 (deferred: the released fds' operations were forgotten when the ring was
// dropped) or 5 (not deferred: close() stopped waiting at the first completions, its own
// cancel's) operations held, and the tasks awaiting them were destroyed with their I/O unfinished.
TEST_P(LoopClosedElsewhere, CompletesEveryOperationItHeld) {
    const Config& setup = GetParam();
    ScopedEnv env("CORIO_IO_URING_DEFER_TASKRUN", setup.defer_taskrun);
    std::unique_ptr<IoBackend> backend = setup.io_uring ? make_io_uring_backend() : make_epoll_backend();
    if (!backend) GTEST_SKIP() << "io_uring is not available here";

    constexpr std::size_t kEach = 5;
    std::vector<Socket> released_running, released_after, kept, peers;
    for (auto* group : {&released_running, &released_after, &kept}) group->reserve(kEach);  // stable addresses
    peers.reserve(3 * kEach);
    std::vector<Task<>> receivers;
    std::unique_ptr<EventLoop> loop;
    std::size_t held_after_run = 0;

    std::thread a([&] {
        loop = std::make_unique<EventLoop>(std::move(backend));
        // The receivers are destroyed pending at close(), as loop.md says: not this test's point.
        loop->set_exception_handler([](EventLoop&, const ExceptionContext&) {});
        loop->call_soon([&] {
            for (auto* group : {&released_running, &released_after, &kept}) {
                for (std::size_t i = 0; i < kEach; ++i) {
                    auto [ours, theirs] = corio_test::unix_socket_pair();
                    group->push_back(std::move(ours));
                    peers.push_back(std::move(theirs));  // open and silent: nothing completes a receive
                    receivers.push_back(create_task(receive(&group->back())));
                }
            }
        });
        loop->call_later(20ms, [&] {
            for (Socket& s : released_running) s.close();  // released with its receive in the kernel
            loop->stop();
        });
        loop->run_forever();
        held_after_run = loop->backend().pending();
        for (Socket& s : released_after) s.close();  // released on the loop's thread, not running
    });
    a.join();
    EXPECT_EQ(held_after_run, 3 * kEach) << setup.name << ": the receives were not all held by the backend";

    std::size_t held_after_close = 0;
    std::thread b([&] {
        loop->close();
        held_after_close = loop->backend().pending();
        receivers.clear();
        kept.clear();
        loop.reset();
    });
    b.join();
    EXPECT_EQ(held_after_close, 0u) << setup.name;
}

INSTANTIATE_TEST_SUITE_P(Backends, LoopClosedElsewhere,
                         ::testing::Values(Config{"epoll", false, "1"}, Config{"io_uring_deferred", true, "1"},
                                           Config{"io_uring_not_deferred", true, "0"}),
                         [](const ::testing::TestParamInfo<Config>& info) { return std::string(info.param.name); });

namespace {
Coro<> read_from(StreamReader* reader) {
    Coro<std::string> reading = reader->read(100);
    (void)co_await std::move(reading);
}
}  // namespace

// Stream readers waiting on multishot receives (provided buffers on), their streams closed in
// the loop's last callback: release_fd had made the reads ready and nothing was left in the
// kernel, so the ring was not dropped; close() then prepared a cancel in the other thread's
// ring, which made it look busy, own() refused it, and the ready reads were never delivered
// (found by the review of the change above).
TEST(LoopClosedElsewhereWithBuffers, DeliversTheReadsItsReleasedStreamsMadeReady) {
    ScopedEnv buffers("CORIO_IO_URING_BUFFERS", "on");
    ScopedEnv deferred("CORIO_IO_URING_DEFER_TASKRUN", "1");
    std::unique_ptr<IoBackend> backend = make_io_uring_backend();
    if (!backend) GTEST_SKIP() << "io_uring is not available here";
    std::unique_ptr<EventLoop> loop;
    std::vector<Socket> peers;
    std::vector<std::optional<StreamPair>> streams(3);
    std::vector<Task<>> readers;
    std::size_t held_after_run = 0;
    std::thread a([&] {
        loop = std::make_unique<EventLoop>(std::move(backend));
        loop->set_exception_handler([](EventLoop&, const ExceptionContext&) {});
        loop->call_soon([&] {
            for (auto& s : streams) {
                auto [ours, theirs] = corio_test::unix_socket_pair();
                peers.push_back(std::move(theirs));
                s.emplace(make_streams(std::move(ours)));
                readers.push_back(create_task(read_from(&s->first)));
            }
        });
        loop->call_later(20ms, [&] {
            for (auto& s : streams) s->second.close();
            loop->stop();
        });
        loop->run_forever();
        held_after_run = loop->backend().pending();
    });
    a.join();
    EXPECT_EQ(held_after_run, streams.size());
    std::size_t held_after_close = 99;
    std::thread b([&] {
        loop->close();
        held_after_close = loop->backend().pending();
        readers.clear();
        streams.clear();
        loop.reset();
    });
    b.join();
    EXPECT_EQ(held_after_close, 0u);
}
