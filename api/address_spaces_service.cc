#include "api/convert.h"
#include "api/services.h"

namespace ioasis::api {

grpc::Status AddressSpacesService::Create(grpc::ServerContext*, const v1::CreateAddressSpaceRequest*, v1::CreateAddressSpaceResponse*) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "address spaces are not available in this build");
}

grpc::Status AddressSpacesService::Destroy(grpc::ServerContext*, const v1::DestroyAddressSpaceRequest*, v1::DestroyAddressSpaceResponse*) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "address spaces are not available in this build");
}

grpc::Status AddressSpacesService::List(grpc::ServerContext*, const v1::ListAddressSpacesRequest*, v1::ListAddressSpacesResponse*) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "address spaces are not available in this build");
}

grpc::Status AddressSpacesService::Attach(grpc::ServerContext*, const v1::AttachRequest*, v1::AttachResponse*) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "address spaces are not available in this build");
}

grpc::Status AddressSpacesService::Detach(grpc::ServerContext*, const v1::DetachRequest*, v1::DetachResponse*) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "address spaces are not available in this build");
}

grpc::Status AddressSpacesService::Map(grpc::ServerContext*, const v1::MapRequest*, v1::MapResponse*) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "address spaces are not available in this build");
}

grpc::Status AddressSpacesService::Unmap(grpc::ServerContext*, const v1::UnmapRequest*, v1::UnmapResponse*) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "address spaces are not available in this build");
}

grpc::Status AddressSpacesService::Mappings(grpc::ServerContext*, const v1::MappingsRequest*, v1::MappingsResponse*) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "address spaces are not available in this build");
}

}  // namespace ioasis::api
