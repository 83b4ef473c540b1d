/** The API calls the screens make, as TanStack Query keys and functions. */
import { api, unwrap } from "./client";
import type { components } from "./schema";

export type BrandRead = components["schemas"]["BrandRead"];
export type BrandCreate = components["schemas"]["BrandCreate"];
export type SenderRead = components["schemas"]["SenderRead"];
export type SenderCreate = components["schemas"]["SenderCreate"];
export type Readiness = components["schemas"]["Readiness"];
export type SignupCreate = components["schemas"]["SignupCreate"];
export type LoginRequest = components["schemas"]["LoginRequest"];

export const keys = {
  brands: ["brands"] as const,
  brand: (brandId: string) => ["brands", brandId] as const,
  readiness: (brandId: string) => ["brands", brandId, "readiness"] as const,
  senders: (brandId: string) => ["brands", brandId, "senders"] as const,
};

export function signUp(body: SignupCreate) {
  return unwrap(api.POST("/api/auth/signup", { body }));
}

export function signIn(body: LoginRequest) {
  return unwrap(api.POST("/api/auth/login", { body }));
}

export function listBrands() {
  return unwrap(api.GET("/api/brands", { params: { query: { limit: 100 } } }));
}

export function getBrand(brandId: string) {
  return unwrap(api.GET("/api/brands/{brand_id}", { params: { path: { brand_id: brandId } } }));
}

export function createBrand(body: BrandCreate) {
  return unwrap(api.POST("/api/brands", { body }));
}

export function getReadiness(brandId: string) {
  return unwrap(api.GET("/api/brands/{brand_id}/readiness", { params: { path: { brand_id: brandId } } }));
}

export function listSenders(brandId: string) {
  return unwrap(
    api.GET("/api/brands/{brand_id}/senders", { params: { path: { brand_id: brandId }, query: { limit: 100 } } }),
  );
}

export function createSender(brandId: string, body: SenderCreate) {
  return unwrap(api.POST("/api/brands/{brand_id}/senders", { params: { path: { brand_id: brandId } }, body }));
}

export function verifySender(brandId: string, senderId: string) {
  return unwrap(
    api.POST("/api/brands/{brand_id}/senders/{sender_id}/verify", {
      params: { path: { brand_id: brandId, sender_id: senderId } },
    }),
  );
}
