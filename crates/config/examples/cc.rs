fn main() {
    for a in std::env::args().skip(1) {
        match vigil_config::load(std::path::Path::new(&a)) {
            Ok(l) => {
                println!(
                    "OK {a}: {} vs, {} rs",
                    l.config.virtual_servers.len(),
                    l.config.real_server_count()
                );
                if !l.warnings.is_empty() {
                    println!("{}", l.warnings);
                }
            }
            Err(e) => println!("{e}"),
        }
    }
}
