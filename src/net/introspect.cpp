// Live introspection: a Unix socket on which the loop answers "ps", "pstree" or "json" with
// the state of its tasks (what `python -m asyncio ps PID` and tokio-console show). It is served
// from the loop's own I/O completions, between ticks, so the snapshot is consistent and no
// task of the application's is involved (it does not show in all_tasks()).
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cerrno>
#include <cstdlib>
#include <mutex>
#include <set>
#include <string>
#include <system_error>

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

// The suffixes in use by this process's introspected loops: each loop takes the lowest free one,
// so a lone loop (one corio::run after another) is always corio-PID.sock.
std::mutex g_indices_mutex;
std::set<int> g_indices_in_use;

int take_lowest_free_index() {
    std::lock_guard lock(g_indices_mutex);
    int n = 0;
    while (g_indices_in_use.count(n)) ++n;
    g_indices_in_use.insert(n);
    return n;
}
void give_back_index(int n) {
    std::lock_guard lock(g_indices_mutex);
    g_indices_in_use.erase(n);
}

class Introspector final : public EventLoop::Service {
public:
    explicit Introspector(EventLoop& loop) : loop_(loop), index_(take_lowest_free_index()) {
        try {
            path_ = introspection_socket_path(::getpid());
            if (index_ > 0) {  // another loop of this process is served already: corio-PID-N.sock
                std::string suffix = "-";
                suffix += std::to_string(index_);
                path_.insert(path_.size() - 5, suffix);
            }
            ::unlink(path_.c_str());
            listener_ = Socket::create(AF_UNIX, SOCK_STREAM);
            listener_.bind(SocketAddress::unix_path(path_));
            ::chmod(path_.c_str(), 0600);  // the owner only: it shows the program's insides
            listener_.listen(8);
            loop_.keep_task_stats(true);
            arm();
        } catch (...) {
            give_back_index(index_);
            throw;
        }
    }
    ~Introspector() override {
        // The loop completed every operation (cancel_all) before its services go: the clients
        // have closed and freed themselves.
        retry_.cancel();
        ::unlink(path_.c_str());
        give_back_index(index_);
    }

private:
    // One request, one answer. The connection is read and written through the backend like any
    // other, so a client that connects and says nothing holds an fd, never the loop; the answer
    // is made in one go, between ticks, so the snapshot is consistent.
    struct Client {
        Client(Introspector& owner, int fd) : owner(owner), socket(fd) {}
        ~Client() { deadline.cancel(); }
        Introspector& owner;
        Socket socket;
        IoOperation op;
        // A client gets a few seconds for its whole exchange: one that connects and says
        // nothing, or never reads its answer, gives its place back.
        TimerHandle deadline;
        char request[64];
        std::string answer;
        std::size_t sent = 0;

        void submit(IoOperation::Kind kind, void* buffer, std::size_t length) {
            op = IoOperation{};
            op.kind = kind;
            op.fd = socket.fileno();
            op.buffer = buffer;
            op.length = length;
            op.complete = &Client::on_complete;
            op.user = this;
            owner.loop_.internal_io_started();
            try {
                owner.loop_.backend().submit(op);
            } catch (...) {
                owner.loop_.internal_io_finished();
                throw;
            }
        }
        static void on_complete(IoOperation* op, long r) noexcept {
            auto* self = static_cast<Client*>(op->user);
            self->owner.loop_.internal_io_finished();
            try {
                if (self->step(op->kind, r)) return;
            } catch (...) {
            }
            self->owner.clients_ -= 1;
            delete self;  // closes the connection
        }
        // False when the exchange is over.
        bool step(IoOperation::Kind kind, long r) {
            if (r < 0) return false;
            if (kind == IoOperation::Kind::Recv) {
                std::string command(request, std::size_t(r));
                while (!command.empty() && (command.back() == '\n' || command.back() == '\r' || command.back() == ' '))
                    command.pop_back();
                answer = describe(command);
            } else {
                sent += std::size_t(r);
            }
            if (sent >= answer.size()) return false;
            submit(IoOperation::Kind::Send, answer.data() + sent, answer.size() - sent);
            return true;
        }
    };

    static std::string describe(const std::string& command) {
        try {
            if (command == "json") return format_task_json();
            if (command == "pstree") return format_task_tree();
            return format_task_table();
        } catch (...) {
            return "corio: could not describe the tasks\n";
        }
    }

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
        if (r >= 0) {
            self->serve(int(r));
        } else if (r != -ECONNABORTED && r != -EINTR && r != -EPROTO) {
            // Out of fds, most likely: the connection stays queued and the listener readable,
            // so accepting again at once would spin the loop. As asyncio's accept loop (and
            // corio's servers) do, wait, then try again.
            try {
                self->loop_.call_exception_handler({"the introspection endpoint could not accept; retrying in 1 s",
                                                    std::make_exception_ptr(std::system_error(int(-r), std::generic_category(), "accept")),
                                                    {}, {}, {}});
                self->retry_ = self->loop_.call_later(kAcceptRetryDelay, [self] { self->arm_or_report(); });
                return;
            } catch (...) {
            }
        }
        self->arm_or_report();
    }

    void arm_or_report() noexcept {
        try {
            arm();
        } catch (...) {
            loop_.call_exception_handler({"the introspection endpoint stopped accepting", std::current_exception(), {}, {}, {}});
        }
    }

    void serve(int fd) noexcept {
        if (clients_ >= kMaxClients) {  // a flood of idle clients: refuse rather than pile up fds
            ::close(fd);
            return;
        }
        Client* client = nullptr;
        try {
            client = new Client(*this, fd);
        } catch (...) {
            ::close(fd);
            return;
        }
        clients_ += 1;
        try {
            // Cancelling the operation in flight ends the exchange through its completion.
            client->deadline = loop_.call_later(kClientTime, [client] { client->owner.loop_.backend().cancel(client->op); });
            client->submit(IoOperation::Kind::Recv, client->request, sizeof client->request);
        } catch (...) {
            clients_ -= 1;
            delete client;
        }
    }

    static constexpr int kMaxClients = 8;
    static constexpr std::chrono::seconds kClientTime{5};
    static constexpr std::chrono::seconds kAcceptRetryDelay{1};
    EventLoop& loop_;
    int index_;
    Socket listener_;
    std::string path_;
    IoOperation op_;
    TimerHandle retry_;
    int clients_ = 0;
};

}  // namespace

void enable_introspection(EventLoop& loop) { loop.add_service(std::make_unique<Introspector>(loop)); }

}  // namespace detail

void enable_introspection() { detail::enable_introspection(get_running_loop()); }

}  // namespace corio
