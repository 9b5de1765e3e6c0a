import { Type } from 'typebox'

export const USERNAME = Type.String({ minLength: 1, maxLength: 150, pattern: '^[A-Za-z0-9_.@+-]+$', description: 'letters, digits and _ . @ + -' })
export const PASSWORD = Type.String({ minLength: 8, maxLength: 1024 })

export const ObtainTokenBody = Type.Object({
  username: Type.String({ minLength: 1, maxLength: 150 }),
  password: Type.String({ minLength: 1, maxLength: 1024 })
}, { additionalProperties: false })

export const TokenPairSchema = Type.Object({ access: Type.String(), refresh: Type.String() })
export const RefreshBody = Type.Object({ refresh: Type.String({ minLength: 1, maxLength: 4096 }) }, { additionalProperties: false })
export const AccessTokenSchema = Type.Object({ access: Type.String() })

export const MeSchema = Type.Object({
  id: Type.Integer(),
  username: Type.String(),
  is_staff: Type.Boolean(),
  robots: Type.Array(Type.String({ description: 'uuids of the robots this user can access' }))
})

export const UserSchema = Type.Object({
  id: Type.Integer(),
  username: Type.String(),
  is_staff: Type.Boolean(),
  is_active: Type.Boolean()
})

export const NewUserBody = Type.Object({
  username: USERNAME,
  password: PASSWORD,
  is_staff: Type.Optional(Type.Boolean({ default: false }))
}, { additionalProperties: false })

export const UserPatchBody = Type.Object({
  password: Type.Optional(PASSWORD),
  is_staff: Type.Optional(Type.Boolean()),
  is_active: Type.Optional(Type.Boolean())
}, { additionalProperties: false, minProperties: 1 })

export const UserIdParams = Type.Object({ id: Type.Integer({ minimum: 1 }) })
