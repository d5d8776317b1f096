// fetch_helper URL DIGEST|- CACHE_DIR: fetches URL into CACHE_DIR and prints
// the cached path on stdout; "waiting" on stderr when another process holds
// the entry. Exit status 1 with the error on stderr. For the test of two
// processes fetching one URL at once.
#include <localvm/error.hpp>
#include <localvm/image/fetch.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <iostream>

int main(int argc, char** argv) {
    if (argc != 4) {
        std::cerr << "usage: fetch_helper URL DIGEST|- CACHE_DIR\n";
        return 2;
    }
    std::optional<localvm::image::digest> expected;
    if (std::string(argv[2]) != "-") {
        std::string problem;
        expected = localvm::image::parse_digest(argv[2], problem);
        if (!expected) {
            std::cerr << problem << "\n";
            return 2;
        }
    }
    localvm::image::fetch_options o;
    o.cache_dir = argv[3];
    o.progress = [](const localvm::image::fetch_progress& p) {
        if (p.waiting)
            std::cerr << "waiting" << std::endl;
    };
    boost::asio::io_context io;
    int status = 1;
    boost::asio::co_spawn(io, localvm::image::fetch(argv[1], expected, o),
                          [&](std::exception_ptr e, std::filesystem::path p) {
                              if (e) {
                                  try {
                                      std::rethrow_exception(e);
                                  } catch (const std::exception& x) {
                                      std::cerr << x.what() << "\n";
                                  }
                                  return;
                              }
                              std::cout << p.string() << std::endl;
                              status = 0;
                          });
    io.run();
    return status;
}
