// Live introspection: a Unix socket on which the loop answers "ps", "pstree" or "json" with
// the state of its tasks (what `python -m asyncio ps PID` and tokio-console show). It is served
// from the loop's own accept completion, between ticks, so the snapshot is consistent and no
// task of the application's is involved (it does not show in all_tasks()).
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>

#include "corio/debug.hpp"
#include "corio/loop.hpp"
#include "corio/socket.hpp"

namespace corio {

std::string introspection_socket_path(long pid) {
    const char* dir = std::getenv("XDG_RUNTIME_DIR");
    std::string base = (dir && *dir) ? dir : "/tmp";
    return base + "/corio-" + std::to_string(pid) + ".sock";
}

namespace detail {

namespace {

std::atomic<int> g_loops_served{0};

class Introspector final : public EventLoop::Service {
public:
    explicit Introspector(EventLoop& loop) : loop_(loop) {
        int n = g_loops_served.fetch_add(1);
        path_ = introspection_socket_path(::getpid());
        if (n > 0) {  // a second loop in this process: corio-PID-N.sock
            std::string suffix = "-";
            suffix += std::to_string(n);
            path_.insert(path_.size() - 5, suffix);
        }
        ::unlink(path_.c_str());
        listener_ = Socket::create(AF_UNIX, SOCK_STREAM);
        listener_.bind(SocketAddress::unix_path(path_));
        ::chmod(path_.c_str(), 0600);  // the owner only: it shows the program's insides
        listener_.listen(8);
        loop_.keep_task_stats(true);
        arm();
    }
    ~Introspector() override { ::unlink(path_.c_str()); }

private:
    void arm() {
        op_ = IoOperation{};
        op_.kind = IoOperation::Kind::Accept;
        op_.fd = listener_.fileno();
        op_.complete = &Introspector::on_accept;
        op_.user = this;
        loop_.internal_io_started();
        loop_.backend().submit(op_);
    }

    static void on_accept(IoOperation* op, long r) noexcept {
        auto* self = static_cast<Introspector*>(op->user);
        self->loop_.internal_io_finished();
        if (r == -ECANCELED) return;
        if (r >= 0) self->serve(int(r));
        try {
            self->arm();
        } catch (...) {
            self->loop_.call_exception_handler(
                {"the introspection endpoint stopped accepting", std::current_exception(), {}, {}, {}});
        }
    }

    // One short request, one answer, on a blocking socket with timeouts: a debugging client
    // may hold the loop for a moment, never for long.
    void serve(int fd) noexcept {
        ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        timeval recv_limit{0, 500'000}, send_limit{2, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &recv_limit, sizeof recv_limit);
        ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_limit, sizeof send_limit);
        char buf[64];
        ssize_t n = ::recv(fd, buf, sizeof buf - 1, 0);
        std::string command = n > 0 ? std::string(buf, std::size_t(n)) : "ps";
        while (!command.empty() && (command.back() == '\n' || command.back() == '\r' || command.back() == ' '))
            command.pop_back();
        std::string answer;
        try {
            if (command == "json")
                answer = format_task_json();
            else if (command == "pstree")
                answer = format_task_tree();
            else
                answer = format_task_table();
        } catch (...) {
            answer = "corio: could not describe the tasks\n";
        }
        std::size_t sent = 0;
        while (sent < answer.size()) {
            ssize_t w = ::send(fd, answer.data() + sent, answer.size() - sent, MSG_NOSIGNAL);
            if (w <= 0) break;
            sent += std::size_t(w);
        }
        ::close(fd);
    }

    EventLoop& loop_;
    Socket listener_;
    std::string path_;
    IoOperation op_;
};

}  // namespace

void enable_introspection(EventLoop& loop) { loop.add_service(std::make_unique<Introspector>(loop)); }

}  // namespace detail

void enable_introspection() { detail::enable_introspection(get_running_loop()); }

}  // namespace corio
