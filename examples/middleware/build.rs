//! Generates the admin service (its custom method option included), no protoc needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    volley_build::Config::new()
        .files(["proto/acme/admin/v1/admin.proto"])
        .includes(["proto"])
        .compile()?;
    Ok(())
}
