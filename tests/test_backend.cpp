// The backend interface driven directly, on every backend this machine has (epoll always,
// io_uring where the kernel allows it): what a caller of submit() and poll() can count on
// regardless of the backend underneath.
#include <corio/backend.hpp>

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;

namespace {

struct Completions {
    std::vector<std::pair<IoOperation::Kind, long>> seen;
    static void record(IoOperation* op, long result) {
        static_cast<Completions*>(op->user)->seen.emplace_back(op->kind, result);
    }
};

struct SocketPair {
    int ours = -1;
    int peer = -1;
    SocketPair() {
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) throw std::system_error(errno, std::generic_category(), "socketpair");
        ours = sv[0];
        peer = sv[1];
    }
    ~SocketPair() {
        ::close(ours);
        ::close(peer);
    }
};

std::vector<std::pair<std::string, std::function<std::unique_ptr<IoBackend>()>>> backends() {
    return {{"epoll", make_epoll_backend}, {"io_uring", make_io_uring_backend}};
}

}  // namespace

// A readiness wait consumes nothing, so a read submitted after one on the same fd does not wait
// for it to complete: when the bytes come, one poll() completes both. (io_uring kept one entry
// per fd and direction in the kernel, readiness waits included: wait_closed()'s watch, ahead of
// a stream reader's next read, cost that read a loop iteration.)
TEST(Backend, AReadBehindAReadinessWaitOnItsFdCompletesInTheSamePoll) {
    for (auto& [name, make] : backends()) {
        std::unique_ptr<IoBackend> backend = make();
        if (!backend) continue;  // io_uring is not available here
        SocketPair pair;
        Completions done;
        IoOperation readable;
        readable.kind = IoOperation::Kind::PollIn;
        readable.fd = pair.ours;
        readable.complete = &Completions::record;
        readable.user = &done;
        char buffer[8];
        IoOperation read;
        read.kind = IoOperation::Kind::Recv;
        read.fd = pair.ours;
        read.buffer = buffer;
        read.length = sizeof buffer;
        read.complete = &Completions::record;
        read.user = &done;
        backend->submit(readable);
        backend->submit(read);
        ASSERT_EQ(backend->poll(0ns), 0u) << name;  // nothing has come yet
        ASSERT_EQ(::send(pair.peer, "x", 1, 0), 1);
        backend->poll(5s);
        EXPECT_EQ(done.seen.size(), 2u) << name;
        for (int i = 0; i < 100 && backend->pending() > 0; ++i) backend->poll(50ms);
        ASSERT_EQ(done.seen.size(), 2u) << name;
        for (auto [kind, result] : done.seen) {
            if (kind == IoOperation::Kind::Recv) {
                EXPECT_EQ(result, 1) << name;
            } else {
                EXPECT_EQ(result, 0) << name;
            }
        }
        backend->release_fd(pair.ours);
    }
}

namespace {
// An operation whose completion submits the exchange's next step, as the introspection
// endpoint's connections do.
struct SendThenReceive {
    IoBackend* backend = nullptr;
    IoOperation send;
    IoOperation receive;
    char buffer[8];
    std::vector<long> results;
    static void on_send(IoOperation* op, long result) {
        auto* self = static_cast<SendThenReceive*>(op->user);
        self->results.push_back(result);
        if (result >= 0) self->backend->submit(self->receive);
    }
    static void on_receive(IoOperation* op, long result) { static_cast<SendThenReceive*>(op->user)->results.push_back(result); }
};
}  // namespace

// cancel_all() delivers the completions that came in before it; one that submits the next step
// gets that step cancelled too. epoll left it queued for ever (a corio-ps exchange in flight when
// the loop closed leaked its connection and its answer; found by the introspection hunt).
TEST(Backend, CancelAllAlsoCancelsWhatItsDeliveredCompletionsSubmit) {
    for (auto& [name, make] : backends()) {
        std::unique_ptr<IoBackend> backend = make();
        if (!backend) continue;
        SocketPair pair;
        SendThenReceive exchange;
        exchange.backend = backend.get();
        exchange.send.kind = IoOperation::Kind::Send;
        exchange.send.fd = pair.ours;
        exchange.send.buffer = const_cast<char*>("x");
        exchange.send.length = 1;
        exchange.send.complete = &SendThenReceive::on_send;
        exchange.send.user = &exchange;
        exchange.receive.kind = IoOperation::Kind::Recv;
        exchange.receive.fd = pair.ours;
        exchange.receive.buffer = exchange.buffer;
        exchange.receive.length = sizeof exchange.buffer;
        exchange.receive.complete = &SendThenReceive::on_receive;
        exchange.receive.user = &exchange;
        backend->submit(exchange.send);
        backend->cancel_all();
        EXPECT_EQ(backend->pending(), 0u) << name;
        EXPECT_EQ(exchange.results, (std::vector<long>{1, -ECANCELED})) << name;
        backend->release_fd(pair.ours);
    }
}

// A bad fd is an operation's error on every backend, never readiness: epoll threw for a
// negative fd (io_uring completed it with -EBADF), and its PollIn on a closed fd completed with
// 0, "readable", so a caller that retries its read on readiness spun (found by the backend.md
// audit).
TEST(Backend, ABadFdCompletesWithEbadfOnEveryBackend) {
    for (auto& [name, make] : backends()) {
        std::unique_ptr<IoBackend> backend = make();
        if (!backend) continue;
        int closed = ::dup(0);
        ASSERT_GE(closed, 0);
        ::close(closed);
        Completions done;
        std::vector<std::unique_ptr<IoOperation>> ops;
        char buffer[8];
        for (int fd : {-1, closed}) {
            for (IoOperation::Kind kind : {IoOperation::Kind::PollIn, IoOperation::Kind::PollOut, IoOperation::Kind::Read}) {
                auto op = std::make_unique<IoOperation>();
                op->kind = kind;
                op->fd = fd;
                op->buffer = buffer;
                op->length = sizeof buffer;
                op->complete = &Completions::record;
                op->user = &done;
                ASSERT_NO_THROW(backend->submit(*op)) << name << " fd " << fd;
                ops.push_back(std::move(op));
            }
        }
        EXPECT_TRUE(done.seen.empty()) << name;  // never inside submit()
        for (int i = 0; i < 100 && backend->pending() > 0; ++i) backend->poll(50ms);
        ASSERT_EQ(done.seen.size(), ops.size()) << name;
        for (auto [kind, result] : done.seen) EXPECT_EQ(result, -EBADF) << name << " kind " << int(kind);
        backend->release_fd(closed);
    }
}
