fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Compiles the proto into messages, a service trait and a client: no protoc needed.
    volley_build::Config::new()
        .files(["proto/greet/v1/greet.proto"])
        .includes(["proto"])
        .compile()?;
    Ok(())
}
