#include <cstdlib>
#include <stdexcept>
#include <string>

#include "corio/backend.hpp"

namespace corio {

std::unique_ptr<IoBackend> make_default_backend() {
    const char* env = std::getenv("CORIO_BACKEND");
    std::string wanted = env ? env : "";
    if (wanted == "epoll") return make_epoll_backend();
    if (wanted == "io_uring") {
        if (auto b = make_io_uring_backend()) return b;
        throw std::runtime_error("CORIO_BACKEND=io_uring, but io_uring is not available here");
    }
    if (!wanted.empty()) throw std::invalid_argument("CORIO_BACKEND must be 'epoll' or 'io_uring', not '" + wanted + "'");
    return make_epoll_backend();
}

}  // namespace corio
